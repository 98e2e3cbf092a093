"""The main job's arguments: its own, the model's (derived from `SimpleS2SConfig`'s fields, so that a new config field
is a new argument) and `Seq2SeqTrainingArguments`; read from an optional JSON/YAML file, then the command line, over
a preset. Also the run record in --output_dir, which decides whether a run may start or resume there."""

import ast
import dataclasses
import inspect
import io
import json
import os
import shutil
import textwrap
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from accelerate.utils import get_cpu_distributed_information, str_to_bool
from transformers import HfArgumentParser, PreTrainedConfig, Seq2SeqTrainingArguments

from ..data import MULTI30K_DIR
from ..models.simple_s2s.configuration_simple_s2s import (
    ATTENTION_TYPES,
    SCHEDULED_SAMPLING_SCHEDULES,
    SimpleS2SConfig,
)
from ..tokenization import TOKENIZER_MODELS
from .checkpoints import TRAINING_STATE_DIR, complete_checkpoints, training_state_dir, verify_checksums
from .locking import LOCK_NAME
from .presets import COMMON_TRAINING_DEFAULTS, PRESETS

# Written into --output_dir/training_state (with the Trainer's state, not uploaded): the fields that make the model
# (see MODEL_FIELDS), all args.
RUN_FILE = "run_args.json"
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass
class JobArguments:
    """What this job adds to the model's fields and `Seq2SeqTrainingArguments`: data, tokenizer, final evaluation."""

    preset: str = field(default="tiny", metadata={"help": f"defaults for everything else, one of {sorted(PRESETS)}"})
    data_dir: str = field(
        default=str(MULTI30K_DIR),
        metadata={"help": "folder with train/val/test as <split>.<lang>[.gz] pairs, <split>.tsv or <split>.jsonl"},
    )
    source_lang: str = "de"
    target_lang: str = "en"
    max_train_samples: int | None = field(default=None, metadata={"help": "use the first N training pairs"})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "validation pairs scored at each evaluation (best-checkpoint selection)"}
    )
    max_test_samples: int | None = None
    streaming: bool = field(
        default=False,
        metadata={"help": "read the training split as a stream (corpora larger than memory); needs --max_steps"},
    )
    streaming_buffer_size: int = field(
        default=10_000, metadata={"help": "--streaming: training pairs shuffled (and length-bucketed) in memory"}
    )
    tokenizer_sample_size: int = field(
        default=100_000, metadata={"help": "--streaming: the tokenizer trains on the first N training pairs"}
    )
    max_source_length: int = field(
        default=64, metadata={"help": "source tokens kept (`</s>` included) in training, scoring and translating"}
    )
    max_target_length: int = field(
        default=64,
        metadata={"help": "target tokens kept in the training labels and perplexity; decoding's max_length"},
    )
    tokenizer_model: Literal[TOKENIZER_MODELS] = "bpe"
    num_beams: int = field(default=5, metadata={"help": "beam width compared with greedy search at the end"})
    length_penalty: float = 1.0
    num_samples: int = field(default=5, metadata={"help": "test sentences shown and plotted at the end"})
    torch_threads: int | None = field(
        default=None, metadata={"help": "CPU threads for torch (default: torch's choice, usually one per core)"}
    )
    max_train_minutes: float | None = field(
        default=None,
        metadata={"help": "end training after this many minutes (evaluated and saved), then evaluate as usual"},
    )
    average_checkpoints: int | None = field(
        default=None,
        metadata={
            "help": "after training, average the last K checkpoints (kept for it); kept if better on validation"
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --output_dir"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "start over in an --output_dir that holds an earlier run of this script"}
    )

    def __post_init__(self):
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise ValueError(f"--max_train_minutes must be > 0, got {self.max_train_minutes}")
        if self.average_checkpoints is not None and not self.average_checkpoints >= 1:
            raise ValueError(f"--average_checkpoints must be >= 1, got {self.average_checkpoints}")
        for name in ("streaming_buffer_size", "tokenizer_sample_size"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")


# `SimpleS2SConfig`'s own fields that are not the job's arguments: the special tokens' ids are fixed by the tokenizer,
# `use_cache` is for generation, and the model's `label_smoothing` is the Trainer's `--label_smoothing_factor`.
NOT_ARGUMENTS = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "decoder_start_token_id",
    "use_cache",
    "label_smoothing",
)
CHOICES = {"attention_type": ATTENTION_TYPES, "scheduled_sampling": SCHEDULED_SAMPLING_SCHEDULES}
# Config fields that act only while training: a run may resume with other values.
TRAINING_ONLY = ("dropout", "initializer_range", "coverage_loss_weight", "scheduled_sampling", "scheduled_sampling_k")


def config_field_comments(config_class: type) -> dict[str, str]:
    """The comments beside and right above each field in the class's source: the config's reasons, as help texts."""
    source = textwrap.dedent(inspect.getsource(config_class))
    lines = source.splitlines()
    comments = {
        token.start[0]: token.string.lstrip("# ")
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    helps = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            first = node.lineno
            while first > 1 and lines[first - 2].lstrip().startswith("#"):
                first -= 1
            helps[node.target.id] = " ".join(comments[row] for row in range(first, node.lineno + 1) if row in comments)
    return helps


def config_arguments(config_class: type[PreTrainedConfig] = SimpleS2SConfig) -> list[tuple[str, Any, Any]]:
    """(name, type, field) of each of the config's own fields that the job takes, with the config's default."""
    inherited = {config_field.name for config_field in dataclasses.fields(PreTrainedConfig)}
    helps = config_field_comments(config_class)
    return [
        (
            config_field.name,
            Literal[CHOICES[config_field.name]] if config_field.name in CHOICES else config_field.type,
            field(default=config_field.default, metadata={"help": helps.get(config_field.name) or None}),
        )
        for config_field in dataclasses.fields(config_class)
        if config_field.name not in inherited and config_field.name not in NOT_ARGUMENTS
    ]


CONFIG_ARGUMENTS = config_arguments()
MainJobArguments = dataclasses.make_dataclass("MainJobArguments", CONFIG_ARGUMENTS, bases=(JobArguments,))
MainJobArguments.__module__ = __name__
MainJobArguments.__doc__ = "The job's own arguments and the model's: `SimpleS2SConfig`'s fields, with its defaults."
CONFIG_FIELDS = tuple(name for name, _, _ in CONFIG_ARGUMENTS)  # what `SimpleS2SConfig(...)` takes from the job
# What makes two runs the same model; an --output_dir holding another one is refused.
MODEL_FIELDS = ("data_dir", "source_lang", "target_lang", "tokenizer_model") + tuple(
    name for name in CONFIG_FIELDS if name not in TRAINING_ONLY
)


class UsageError(ValueError):
    """A mistake in the arguments or the files they name: reported in one line, without a traceback."""


class OneLineArgumentParser(HfArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def parse_arguments(argv: Sequence[str]) -> tuple[MainJobArguments, Seq2SeqTrainingArguments]:
    """Command line over file over preset over defaults; the file is an optional first argument (.json/.yaml)."""
    check_launch()
    argv = list(argv)
    file_values: dict[str, Any] = {}
    if argv and argv[0].endswith(CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        file_values = read_argument_file(argv.pop(0))
    dataclass_types = (MainJobArguments, Seq2SeqTrainingArguments)
    known = {f.name for dataclass_type in dataclass_types for f in dataclasses.fields(dataclass_type) if f.init}
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise UsageError(f"unknown argument {unknown[0]!r} in the argument file")

    parser = OneLineArgumentParser(dataclass_types)
    # The preset (command line, else file) decides the other defaults; --help waits until they are set.
    parser.set_defaults(**file_values)
    preset = parser.parse_known_args([arg for arg in argv if arg not in ("-h", "--help")])[0].preset
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    parser.set_defaults(**{**COMMON_TRAINING_DEFAULTS, **PRESETS[preset], **file_values})
    try:
        job_args, training_args, remaining = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    except ValueError as error:  # a dataclass's own validation (e.g. Seq2SeqTrainingArguments.__post_init__)
        raise UsageError(str(error).strip().splitlines()[0]) from None
    if remaining:
        raise UsageError(f"unknown argument {remaining[0]!r}")
    if job_args.streaming and training_args.max_steps <= 0:
        raise UsageError(
            f"--streaming needs --max_steps > 0 (a stream has no length to count epochs in), got {training_args.max_steps}"
        )
    if job_args.average_checkpoints and training_args.save_total_limit is not None:  # the last K, and the best
        training_args.save_total_limit = max(training_args.save_total_limit, job_args.average_checkpoints + 1)
    return job_args, training_args


def check_launch() -> None:
    """Refuse `accelerate launch --cpu --num_processes N`: without `--mpirun_hostfile` accelerate starts one process
    (it sets MASTER_ADDR for the N it was asked for, but no WORLD_SIZE), which would train alone."""
    several_asked = str_to_bool(os.environ.get("ACCELERATE_USE_CPU", "false")) and "MASTER_ADDR" in os.environ
    if several_asked and get_cpu_distributed_information().world_size == 1:
        raise UsageError(
            "accelerate launch --cpu starts one process unless given --mpirun_hostfile; for N processes on CPUs run "
            "`accelerate launch --multi_gpu --num_processes N ...` (gloo without a GPU) or `torchrun --nproc_per_node N ...`"
        )


def read_argument_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
    except OSError as error:
        raise UsageError(f"cannot read argument file {path}: {error.strerror}") from None
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise UsageError(f"{path} is not valid {'JSON' if path.endswith('.json') else 'YAML'}: {error}") from None
    if not isinstance(values, dict):
        raise UsageError(f"{path} must hold a mapping of argument names to values")
    return values


def check_output_dir(output_dir: Path, job_args: MainJobArguments) -> str | None:
    """Refuse an --output_dir that holds something else; returns the checkpoint to resume from, if any."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"--output_dir {output_dir} is a file, not a folder")
    if not (output_dir.is_dir() and any(path.name != LOCK_NAME for path in output_dir.iterdir())):
        if job_args.resume:
            raise UsageError(f"--resume: nothing to resume in {output_dir}")
        return None
    run_file = Path(training_state_dir(output_dir)) / RUN_FILE
    if not run_file.is_file() and not (output_dir / RUN_FILE).is_file():
        raise UsageError(f"--output_dir {output_dir} is not empty and holds no run of this script; pick another")
    if job_args.overwrite_output_dir and not job_args.resume:
        return None
    if not run_file.is_file():
        raise UsageError(
            f"--output_dir {output_dir} holds a run saved before {TRAINING_STATE_DIR}/ existed; move its "
            f"checkpoint-* folders and {RUN_FILE} into {output_dir / TRAINING_STATE_DIR} to use it, or pick another"
        )
    previous = json.loads(run_file.read_text())["model"]
    defaults = {job_field.name: job_field.default for job_field in dataclasses.fields(MainJobArguments)}
    for name in MODEL_FIELDS:
        there = previous.get(name, defaults[name])  # a field added since that run had its default there
        if there != getattr(job_args, name):
            raise UsageError(
                f"--output_dir {output_dir} already holds a different model ({name}={there!r} there, "
                f"{getattr(job_args, name)!r} here); pick another --output_dir or pass --overwrite_output_dir"
            )
    if not job_args.resume:
        raise UsageError(
            f"--output_dir {output_dir} already holds this run; pass --resume to continue it "
            "or --overwrite_output_dir to start over"
        )
    return verified_checkpoint(output_dir)


def verified_checkpoint(output_dir: Path) -> str:
    """The last complete checkpoint of the run in `output_dir` (in its training_state/), its files checked against
    the checksums written when it was saved."""
    state_dir = training_state_dir(output_dir)
    checkpoints = complete_checkpoints(state_dir, require_checksums=True)
    if not checkpoints:
        raise UsageError(f"--resume: no complete checkpoint in {state_dir}")
    if error := checksum_error(checkpoints[0]):
        intact = next((folder for folder in checkpoints[1:] if not checksum_error(folder)), None)
        advice = f"move it away to resume from {intact}, the last intact one" if intact else "no earlier one is intact"
        raise UsageError(f"--resume: {error}; {advice}")
    return checkpoints[0]


def checksum_error(folder: str) -> str | None:
    try:
        verify_checksums(folder)
    except ValueError as error:
        return str(error)
    return None


def start_output_dir(output_dir: Path, job_args: MainJobArguments) -> None:
    """A fresh run: clear an earlier run of this script (only one, see `check_output_dir`; also one saved before
    training_state/ existed) and record this one."""
    run_file = Path(training_state_dir(output_dir)) / RUN_FILE
    if run_file.is_file() or (output_dir / RUN_FILE).is_file():
        for path in output_dir.iterdir():
            if path.name == LOCK_NAME:  # this run's own lock stays
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    run_file.parent.mkdir(parents=True, exist_ok=True)
    run = {"model": {name: getattr(job_args, name) for name in MODEL_FIELDS}, "job": dataclasses.asdict(job_args)}
    run_file.write_text(json.dumps(run, indent=2) + "\n")


__all__ = [
    "CONFIG_FIELDS",
    "MODEL_FIELDS",
    "MainJobArguments",
    "UsageError",
    "check_launch",
    "check_output_dir",
    "parse_arguments",
    "start_output_dir",
]
