"""Crash safety of the training job, where kills happen (not in the model class that travels to the Hub): the
checkpoint to resume from, skipping one cut off while being saved and refusing a damaged one (checksums written when
it was saved), and the final model saved atomically with checksums, checked when loaded back."""

import hashlib
import json
import os
import re
import shutil
import tempfile

from accelerate import PartialState
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

# `Trainer._save_checkpoint` writes the weights, optimizer, scheduler and RNG states first and `trainer_state.json`
# last: a checkpoint folder without a readable state for its own step was cut off while being saved.
TRAINER_STATE_NAME = "trainer_state.json"
# Saving writes a complete copy into a staging folder first, then moves the files in under this marker: a folder
# that still holds it was cut off between two complete saves, and loading it is refused.
SAVE_IN_PROGRESS_NAME = ".save_in_progress"
STAGING_PREFIX = ".save_staging-"
CHECKSUMS_NAME = "checksums.sha256"  # `sha256sum -c checksums.sha256` format, for the weight files
WEIGHTS_FILE_PATTERN = re.compile(r"(model|pytorch_model)(-\d{5}-of-\d{5})?\.(safetensors|bin)(\.index\.json)?")
# The job's --output_dir holds what a Hub repository should (the final model, tokenizer, card, metrics, plots); the
# Trainer's state (checkpoints with their optimizer and pickled arguments, TensorBoard `runs/`, the job's
# `run_args.json`) lives in this subfolder of it, which an upload leaves out (`HUB_IGNORE_PATTERNS`).
TRAINING_STATE_DIR = "training_state"
# `HfApi.upload_folder(..., ignore_patterns=list(HUB_IGNORE_PATTERNS))`: a copy, upload_folder extends the list it gets
HUB_IGNORE_PATTERNS = (f"{TRAINING_STATE_DIR}/*", ".*")


def training_state_dir(output_dir: str) -> str:
    """Where the Trainer of a run with this --output_dir keeps its checkpoints: `<output_dir>/training_state`."""
    return os.path.join(os.fspath(output_dir), TRAINING_STATE_DIR)


def checkpoints_folder(run_dir: str) -> str:
    """The folder holding a run's `checkpoint-<step>` folders: `run_dir/training_state`, or `run_dir` itself for a
    run saved before that subfolder existed (or a Trainer's own output_dir)."""
    state_dir = training_state_dir(run_dir)
    return state_dir if os.path.isdir(state_dir) else os.fspath(run_dir)


def is_complete_checkpoint(folder: str, require_checksums: bool = False) -> bool:
    """True when `folder` (a `checkpoint-<step>` folder) holds a readable trainer state for that step (and, with
    `require_checksums`, the checksums that `ChecksumCheckpoints` writes after it)."""
    name = os.path.basename(os.path.normpath(folder))
    if not name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") or not name.split("-")[-1].isdigit():
        return False
    if require_checksums and not os.path.isfile(os.path.join(folder, CHECKSUMS_NAME)):
        return False
    try:
        with open(os.path.join(folder, TRAINER_STATE_NAME), encoding="utf-8") as state_file:
            state = json.load(state_file)
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("global_step") == int(name.split("-")[-1])


def complete_checkpoints(output_dir: str, require_checksums: bool = False) -> list[str]:
    """The complete `checkpoint-<step>` folders of `output_dir`, the highest step first."""
    if not os.path.isdir(output_dir):
        return []
    steps = {}
    for name in os.listdir(output_dir):
        folder = os.path.join(output_dir, name)
        if os.path.isdir(folder) and is_complete_checkpoint(folder, require_checksums):
            steps[int(name.split("-")[-1])] = folder
    return [steps[step] for step in sorted(steps, reverse=True)]


def last_complete_checkpoint(output_dir: str, require_checksums: bool = False) -> str | None:
    """The complete `checkpoint-<step>` folder of `output_dir` with the highest step, or None if there is none.

    Unlike `transformers.trainer_utils.get_last_checkpoint`, a checkpoint that a killed process left half written
    is skipped (resuming from it would silently restart the optimizer or the step count).
    """
    return next(iter(complete_checkpoints(output_dir, require_checksums)), None)


def write_checksums(folder: str, names: list[str]) -> None:
    """`checksums.sha256` of the named files of `folder`, replaced in one step."""
    lines = [f"{sha256_of_file(os.path.join(folder, name))}  {name}\n" for name in sorted(names)]
    partial = os.path.join(folder, f".{CHECKSUMS_NAME}.partial")
    with open(partial, "w", encoding="utf-8") as checksums:
        checksums.writelines(lines)
    os.replace(partial, os.path.join(folder, CHECKSUMS_NAME))


def verify_checksums(folder: str) -> None:
    """Raise a ValueError naming the first file of `folder` that is missing or differs from `checksums.sha256`."""
    checksums_path = os.path.join(folder, CHECKSUMS_NAME)
    with open(checksums_path, encoding="utf-8") as checksums:
        for number, line in enumerate(checksums.read().split("\n"), start=1):
            if not line.strip():
                continue
            fields = line.split(maxsplit=1)
            if len(fields) != 2:
                raise ValueError(f"line {number} of {checksums_path} is not '<sha256>  <file name>': {line!r}")
            expected, name = fields
            path = os.path.join(folder, name.lstrip("*"))
            if not os.path.isfile(path):
                raise ValueError(f"{path} is missing although {checksums_path} lists it")
            if sha256_of_file(path) != expected:
                raise ValueError(f"{path} is corrupted: its SHA-256 differs from the one saved in {checksums_path}")


class ChecksumCheckpoints(TrainerCallback):
    """Writes `checksums.sha256` of every file of each checkpoint once the Trainer has saved it (weights, optimizer,
    scheduler, RNG and trainer states), so that a damaged checkpoint is refused before a run resumes from it."""

    def on_save(self, args, state, control, **kwargs):
        PartialState().wait_for_everyone()  # every process has written its RNG state
        if args.should_save:
            folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            write_checksums(
                folder, [name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name))]
            )


def sha256_of_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def move_saved_files_into(staging: str, target: str) -> None:
    """Move a complete save from `staging` into `target`, replacing the weight files of an earlier save there and
    keeping every other file (tokenizer, optimizer, checkpoints)."""
    staged = sorted(os.listdir(staging))
    for name in staged:
        fsync_path(os.path.join(staging, name))  # on disk before any of it becomes visible under `target`
    marker = os.path.join(target, SAVE_IN_PROGRESS_NAME)
    with open(marker, "w", encoding="utf-8") as marker_file:
        marker_file.write(f"files are being moved in from {staging}\n")
    fsync_path(target)
    for name in os.listdir(target):
        stale_weights = WEIGHTS_FILE_PATTERN.fullmatch(name) or name == CHECKSUMS_NAME
        if stale_weights and name not in staged and os.path.isfile(os.path.join(target, name)):
            os.remove(os.path.join(target, name))  # e.g. shards of a save with another `max_shard_size`
    for name in staged:
        os.replace(os.path.join(staging, name), os.path.join(target, name))
    os.remove(marker)
    fsync_path(target)


def save_pretrained_atomically(model, folder: str, **kwargs):
    """`model.save_pretrained(folder, **kwargs)`, made safe against crashes: the files are written into a staging
    folder inside `folder` and moved in only once complete, with `checksums.sha256` of the weights. A process killed
    while writing leaves the previous save loadable; one killed while moving leaves a marker that
    `check_saved_folder` refuses. Other files in `folder` (tokenizer, checkpoints) are kept, stale shards removed."""
    target = os.fspath(folder)
    if os.path.isfile(target):
        raise ValueError(f"cannot save the model into {target}: it is a file, not a folder")
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(target):
        if name.startswith(STAGING_PREFIX):  # left behind by a process killed while writing
            shutil.rmtree(os.path.join(target, name), ignore_errors=True)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target)
    try:
        result = model.save_pretrained(staging, **kwargs)
        write_checksums(staging, [name for name in os.listdir(staging) if WEIGHTS_FILE_PATTERN.fullmatch(name)])
        move_saved_files_into(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def safetensors_layout_error(path: str) -> str | None:
    """Why `path` is not a complete safetensors file (an 8-byte header size, a JSON header, then exactly the tensor
    bytes the header lists), or None."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        prefix = file.read(8)
        header_size = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if header_size < 2 or 8 + header_size > size:
            return f"the header does not fit in the file ({size} bytes)"
        try:
            header = json.loads(file.read(header_size))
            ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
            if not all(isinstance(end, int) and not isinstance(end, bool) for end in ends):
                raise TypeError(
                    f"tensor data offsets must be integers, got {[e for e in ends if not isinstance(e, int)][:3]}"
                )
            data_end = max(ends, default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            return f"the header is not valid ({error})"
    if 8 + header_size + data_end != size:
        return f"the header lists {data_end} bytes of tensors but the file holds {size - 8 - header_size}"
    return None


def check_saved_folder(folder: str, config_class: type | None = None) -> None:
    """Refuse a local model folder that a crash left half-saved or whose files are damaged, naming the file: the
    save marker, a `config.json` that `config_class` refuses, truncated safetensors, weights that differ from their
    checksums."""
    if os.path.exists(os.path.join(folder, SAVE_IN_PROGRESS_NAME)):
        raise OSError(
            f"{folder} was cut off while being saved ({SAVE_IN_PROGRESS_NAME} is present): its files may come from "
            "two different saves. Save the model into it again."
        )
    config_path = os.path.join(folder, "config.json")
    if config_class is not None and os.path.isfile(config_path):
        try:
            config_class.from_json_file(config_path)
        except Exception as error:  # the JSON parser's, strict's and our validation errors alike
            raise ValueError(f"{config_path} is not a valid {config_class.__name__}: {error}") from error
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".safetensors") and (problem := safetensors_layout_error(path)):
            raise ValueError(f"{path} is truncated or not a safetensors file: {problem}")
    if os.path.isfile(os.path.join(folder, CHECKSUMS_NAME)):
        verify_checksums(folder)


__all__ = [
    "HUB_IGNORE_PATTERNS",
    "TRAINING_STATE_DIR",
    "ChecksumCheckpoints",
    "checkpoints_folder",
    "check_saved_folder",
    "complete_checkpoints",
    "is_complete_checkpoint",
    "last_complete_checkpoint",
    "save_pretrained_atomically",
    "training_state_dir",
    "verify_checksums",
]
