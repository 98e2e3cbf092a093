"""Find the checkpoint to resume from after a run was killed, skipping one that was only half written."""

import json
import os

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

# `Trainer._save_checkpoint` writes the weights, optimizer, scheduler and RNG states first and `trainer_state.json`
# last: a checkpoint folder without a readable state for its own step was cut off while being saved.
TRAINER_STATE_NAME = "trainer_state.json"


def is_complete_checkpoint(folder: str) -> bool:
    """True when `folder` (a `checkpoint-<step>` folder) holds a readable trainer state for that step."""
    name = os.path.basename(os.path.normpath(folder))
    if not name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") or not name.split("-")[-1].isdigit():
        return False
    try:
        with open(os.path.join(folder, TRAINER_STATE_NAME), encoding="utf-8") as state_file:
            state = json.load(state_file)
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("global_step") == int(name.split("-")[-1])


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The complete `checkpoint-<step>` folder of `output_dir` with the highest step, or None if there is none.

    Unlike `transformers.trainer_utils.get_last_checkpoint`, a checkpoint that a killed process left half written
    is skipped (resuming from it would silently restart the optimizer or the step count).
    """
    if not os.path.isdir(output_dir):
        return None
    steps = {}
    for name in os.listdir(output_dir):
        folder = os.path.join(output_dir, name)
        if os.path.isdir(folder) and is_complete_checkpoint(folder):
            steps[int(name.split("-")[-1])] = folder
    return steps[max(steps)] if steps else None


__all__ = ["is_complete_checkpoint", "last_complete_checkpoint"]
