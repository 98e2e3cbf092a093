"""The main job: train a German->English SimpleS2S on Multi30k (or your own parallel corpus), evaluate, save.

    simple-s2s-train                                  # preset `tiny`: a few minutes on a laptop CPU
    simple-s2s-train --preset full                    # the published baseline size, for a GPU
    simple-s2s-train my_run.yaml --num_train_epochs 3 # arguments from a JSON/YAML file, then the command line
    simple-s2s-train --output_dir outputs/x --resume  # continue an interrupted run from its last checkpoint

Data -> tokenizer -> collator -> model -> Seq2SeqTrainer -> test BLEU/chrF (greedy and beam) -> samples, attention
plots, model card; everything lands in `--output_dir`.
"""

import argparse
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from transformers import (
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    HfArgumentParser,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)
from transformers.trainer_utils import set_seed

from ..data import MULTI30K_DIR, load_parallel_corpus
from ..metrics import bleu_signature
from ..model_card import write_model_card
from ..models.simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from ..tokenization import train_tokenizer
from .callbacks import ScheduledSamplingCallback, StopAfterTime, StopOnInterrupt
from .checkpoints import last_complete_checkpoint, save_pretrained_atomically
from .evaluation import compute_metrics_fn, evaluate_decodings, format_table, generation_config, translate_and_plot
from .presets import COMMON_TRAINING_DEFAULTS, PRESETS


@dataclass
class MainJobArguments:
    """What this script adds to `Seq2SeqTrainingArguments`: data, tokenizer, model size, final evaluation."""

    preset: Literal["tiny", "full"] = field(
        default="tiny", metadata={"help": "defaults for everything below and the training arguments"}
    )
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
    max_source_length: int = 64
    max_target_length: int = 64
    tokenizer_model: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = field(default=8000, metadata={"help": "joint source+target subword vocabulary"})
    embedding_size: int = 256
    hidden_size: int = 512
    encoder_layers: int = 1
    decoder_layers: int = 1
    attention_type: Literal["bahdanau", "luong_dot", "luong_general"] = "bahdanau"
    dropout: float = 0.1
    tie_word_embeddings: bool = True
    share_embeddings: bool = field(default=False, metadata={"help": "one embedding for both languages"})
    coverage: bool = field(default=False, metadata={"help": "coverage vector in the attention (against repetition)"})
    coverage_loss_weight: float = field(
        default=0.0, metadata={"help": "weight of the coverage loss (needs --coverage)"}
    )
    scheduled_sampling: Literal["none", "linear", "exponential", "inverse_sigmoid"] = field(
        default="none", metadata={"help": "decay of the teacher forcing ratio (against exposure bias)"}
    )
    scheduled_sampling_k: float = field(default=1000.0, metadata={"help": "the schedule's constant k"})
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
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --output_dir"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "start over in an --output_dir that holds an earlier run of this script"}
    )


# What makes two runs the same model; an --output_dir holding another one is refused.
MODEL_FIELDS = (
    "data_dir",
    "source_lang",
    "target_lang",
    "tokenizer_model",
    "vocab_size",
    "embedding_size",
    "hidden_size",
    "encoder_layers",
    "decoder_layers",
    "attention_type",
    "tie_word_embeddings",
    "share_embeddings",
    "coverage",
)
RUN_FILE = "run_args.json"
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


class UsageError(ValueError):
    """A mistake in the arguments or the files they name: reported in one line, without a traceback."""


class OneLineArgumentParser(HfArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def parse_arguments(argv: Sequence[str]) -> tuple[MainJobArguments, Seq2SeqTrainingArguments]:
    """Command line over file over preset over defaults; the file is an optional first argument (.json/.yaml)."""
    argv = list(argv)
    file_values: dict[str, Any] = {}
    if argv and argv[0].endswith(CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        file_values = read_argument_file(argv.pop(0))
    parser = OneLineArgumentParser((MainJobArguments, Seq2SeqTrainingArguments))
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise UsageError(f"unknown argument {unknown[0]!r} in the argument file")

    preset_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    preset_parser.add_argument("--preset")
    preset = preset_parser.parse_known_args(argv)[0].preset or file_values.get("preset", "tiny")
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    parser.set_defaults(**{**COMMON_TRAINING_DEFAULTS, **PRESETS[preset], **file_values, "preset": preset})
    try:
        job_args, training_args, remaining = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    except ValueError as error:  # a dataclass's own validation (e.g. Seq2SeqTrainingArguments.__post_init__)
        raise UsageError(str(error).strip().splitlines()[0]) from None
    if remaining:
        raise UsageError(f"unknown argument {remaining[0]!r}")
    return job_args, training_args


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
    if not (output_dir.is_dir() and any(output_dir.iterdir())):
        if job_args.resume:
            raise UsageError(f"--resume: nothing to resume in {output_dir}")
        return None
    run_file = output_dir / RUN_FILE
    if not run_file.is_file():
        raise UsageError(f"--output_dir {output_dir} is not empty and holds no run of this script; pick another")
    if job_args.overwrite_output_dir and not job_args.resume:
        return None
    previous = json.loads(run_file.read_text())["model"]
    for name in MODEL_FIELDS:
        if previous.get(name) != getattr(job_args, name):
            raise UsageError(
                f"--output_dir {output_dir} already holds a different model ({name}={previous.get(name)!r} there, "
                f"{getattr(job_args, name)!r} here); pick another --output_dir or pass --overwrite_output_dir"
            )
    if not job_args.resume:
        raise UsageError(
            f"--output_dir {output_dir} already holds this run; pass --resume to continue it "
            "or --overwrite_output_dir to start over"
        )
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is None:
        raise UsageError(f"--resume: no complete checkpoint in {output_dir}")
    return checkpoint


def start_output_dir(output_dir: Path, job_args: MainJobArguments) -> None:
    """A fresh run: clear an earlier run of this script (only one, see `check_output_dir`) and record this one."""
    if (output_dir / RUN_FILE).is_file():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    run = {"model": {name: getattr(job_args, name) for name in MODEL_FIELDS}, "job": dataclasses.asdict(job_args)}
    (output_dir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")


def build_model(
    job_args: MainJobArguments, vocab_size: int, label_smoothing: float = 0.0
) -> SimpleS2SForConditionalGeneration:
    config = SimpleS2SConfig(
        label_smoothing=label_smoothing,
        vocab_size=vocab_size,
        embedding_size=job_args.embedding_size,
        hidden_size=job_args.hidden_size,
        encoder_layers=job_args.encoder_layers,
        decoder_layers=job_args.decoder_layers,
        attention_type=job_args.attention_type,
        dropout=job_args.dropout,
        tie_word_embeddings=job_args.tie_word_embeddings,
        share_embeddings=job_args.share_embeddings,
        coverage=job_args.coverage,
        coverage_loss_weight=job_args.coverage_loss_weight,
        scheduled_sampling=job_args.scheduled_sampling,
        scheduled_sampling_k=job_args.scheduled_sampling_k,
    )
    return SimpleS2SForConditionalGeneration(config)


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        job_args, training_args, splits, resume_from = setup(argv)
    except (UsageError, FileNotFoundError, ValueError) as error:
        # FileNotFoundError/ValueError here come from the data files, named in the message
        print(f"simple-s2s-train: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    run(job_args, training_args, splits, resume_from)


def setup(argv: Sequence[str]):
    job_args, training_args = parse_arguments(argv)
    if job_args.max_train_minutes is not None and not job_args.max_train_minutes > 0:
        raise UsageError(f"--max_train_minutes must be > 0, got {job_args.max_train_minutes}")
    output_dir = Path(training_args.output_dir)
    resume_from = check_output_dir(output_dir, job_args)
    splits = load_parallel_corpus(job_args.data_dir, job_args.source_lang, job_args.target_lang)
    for required in ("validation", "test"):
        if required not in splits:
            raise UsageError(f"no {required} split in --data_dir {job_args.data_dir}")
    limits = {"train": job_args.max_train_samples, "validation": job_args.max_eval_samples}
    limits["test"] = job_args.max_test_samples
    for split_name, limit in limits.items():
        if limit is not None:
            splits[split_name] = splits[split_name].select(range(min(limit, len(splits[split_name]))))
    if resume_from is None:
        start_output_dir(output_dir, job_args)
    return job_args, training_args, splits, resume_from


def run(job_args: MainJobArguments, training_args: Seq2SeqTrainingArguments, splits, resume_from: str | None):
    started = time.perf_counter()
    output_dir = Path(training_args.output_dir)
    set_seed(training_args.seed)
    if job_args.torch_threads:
        torch.set_num_threads(job_args.torch_threads)
    src, tgt = job_args.source_lang, job_args.target_lang

    # Tokenizer: trained on the training split's both sides, saved at once so that --resume reuses it.
    if resume_from is None:
        pairs = splits["train"]["translation"]
        tokenizer = train_tokenizer(
            [p[src] for p in pairs] + [p[tgt] for p in pairs],
            vocab_size=job_args.vocab_size,
            model=job_args.tokenizer_model,
        )
        tokenizer.save_pretrained(output_dir)
    else:
        tokenizer = AutoTokenizer.from_pretrained(output_dir)

    def preprocess(batch):
        return tokenizer(
            [p[src] for p in batch["translation"]],
            text_target=[p[tgt] for p in batch["translation"]],
            max_length=job_args.max_source_length,
            truncation=True,
        )

    tokenized = {
        name: splits[name].map(preprocess, batched=True, remove_columns=["translation"])
        for name in ("train", "validation")
    }
    model = build_model(job_args, vocab_size=len(tokenizer), label_smoothing=training_args.label_smoothing_factor)
    model.generation_config = generation_config(model, job_args.max_target_length, 1)
    training_args.generation_max_length = job_args.max_target_length
    interrupt = StopOnInterrupt()
    time_limit = StopAfterTime(60 * job_args.max_train_minutes) if job_args.max_train_minutes else None
    trainer = Seq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(tokenizer),
        callbacks=[interrupt]
        + ([time_limit] if time_limit else [])
        + ([ScheduledSamplingCallback()] if job_args.scheduled_sampling != "none" else []),
    )
    # The model smooths its own loss (config.label_smoothing): the Trainer's smoother would take the labels away
    # from the forward, and the coverage loss with them.
    trainer.label_smoother = None
    print(f"{model.num_parameters():,} parameters; training on {len(tokenized['train']):,} pairs")
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    if interrupt.interrupted:
        checkpoint = last_complete_checkpoint(output_dir)
        print(
            f"Stopped; last checkpoint: {checkpoint}. Continue with the same command plus --resume.", file=sys.stderr
        )
        raise SystemExit(130)

    # Evaluation of the best checkpoint (loaded back by the Trainer): greedy vs beam, then the winner is kept.
    model.eval()
    evaluation, best_generation_config = evaluate_decodings(
        model, tokenizer, {"validation": splits["validation"], "test": splits["test"]}, job_args, training_args
    )
    model.generation_config = best_generation_config
    # model.safetensors, config (auto_map), model code, generation config; crash-safe (the tokenizer is saved already)
    save_pretrained_atomically(model, str(output_dir))

    test_pairs = splits["test"].select(range(min(job_args.num_samples, len(splits["test"]))))["translation"]
    sample_sources = [p[src] for p in test_pairs]
    sample_translations, plots = translate_and_plot(model, tokenizer, sample_sources, output_dir)
    samples = [
        {"source": p[src], "reference": p[tgt], "translation": t}
        for p, t in zip(test_pairs, sample_translations, strict=True)
    ]

    metrics = {
        **evaluation,
        "bleu_signature": bleu_signature(),
        "generation": best_generation_config.to_diff_dict(),
        "num_parameters": model.num_parameters(),
        "train": train_result.metrics,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_validation_bleu_during_training": trainer.state.best_metric,
        "stopped_by_time_limit_at_step": time_limit.stopped_at_step if time_limit else None,
        "planned_steps": trainer.state.max_steps,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "dataset_sizes": {name: len(split) for name, split in splits.items()},
        "samples": samples,
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    write_model_card(output_dir, job_args, training_args, metrics, plots[0] if plots else None)

    print("\n" + format_table(evaluation["scores"]))
    print(f"(greedy vs beam chosen on {evaluation['selected_on']}: {evaluation['selected_decoding']})\n")
    for i, sample in enumerate(samples):
        print(f"[{i}] source:      {sample['source']}\n    reference:   {sample['reference']}")
        print(f"    translation: {sample['translation']}")
    print(f"\nAttention plots: {output_dir / 'plots'}/attention_*.png")
    print(f"Model, tokenizer, metrics.json and README.md (model card): {output_dir}")
    print(f"Wall time: {metrics['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
