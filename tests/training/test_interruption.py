"""A training run killed mid-way (SIGINT, SIGKILL) and resumed from its last checkpoint ends exactly like an
uninterrupted run with the same seed: same weights, same loss curve, same evaluation loss."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reversal_task import loss_curve, make_trainer
from transformers.trainer_utils import get_last_checkpoint

from hf_simple_s2s.training.checkpoints import last_complete_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tests" / "reversal_task.py"
MAX_STEPS, SAVE_STEPS = 12, 4


def start_training(output_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, str(SCRIPT), "--output_dir", str(output_dir), "--max_steps", str(MAX_STEPS)]
    command += ["--save_steps", str(SAVE_STEPS), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"training exited early ({process.returncode}): {process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.1)


def finish(output_dir: Path):
    """Resume in this process from the last complete checkpoint and run to the end."""
    trainer = make_trainer(str(output_dir), max_steps=MAX_STEPS, save_steps=SAVE_STEPS)
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(str(output_dir)))
    return trainer


def assert_same_run(resumed, reference) -> None:
    reference_weights = reference.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, reference_weights[name]), f"{name} differs after resuming"
    assert loss_curve(resumed) == loss_curve(reference)
    assert resumed.state.global_step == reference.state.global_step == MAX_STEPS
    assert resumed.evaluate()["eval_loss"] == reference.evaluate()["eval_loss"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    trainer = make_trainer(str(tmp_path_factory.mktemp("uninterrupted")), max_steps=MAX_STEPS, save_steps=SAVE_STEPS)
    trainer.train()
    return trainer


@pytest.mark.parametrize("sent_signal", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_run_resumes_to_identical_result(sent_signal, uninterrupted, tmp_path):
    output_dir, marker = tmp_path / "run", tmp_path / "paused"
    process = start_training(output_dir, "--pause_at_step", "6", "--marker", str(marker))
    wait_for(marker, process)
    process.send_signal(sent_signal)
    assert process.wait(timeout=60) != 0

    assert last_complete_checkpoint(str(output_dir)) == str(output_dir / "checkpoint-4")
    assert not (output_dir / "model.safetensors").exists()  # the run never reached its final save
    assert_same_run(finish(output_dir), uninterrupted)


def test_half_written_checkpoint_is_skipped(uninterrupted, tmp_path):
    """A checkpoint cut off while saving (no trainer state yet) is not resumed from; transformers' own helper would."""
    output_dir = tmp_path / "run"
    trainer = make_trainer(str(output_dir), max_steps=MAX_STEPS, save_steps=SAVE_STEPS)
    trainer.train()  # complete checkpoints 4, 8, 12
    cut_off = output_dir / "checkpoint-16"
    cut_off.mkdir()
    (cut_off / "model.safetensors").write_bytes((output_dir / "checkpoint-12" / "model.safetensors").read_bytes())
    (cut_off / "trainer_state.json").write_text('{"global_step": 1')  # truncated mid-write
    assert get_last_checkpoint(str(output_dir)) == str(cut_off)
    assert last_complete_checkpoint(str(output_dir)) == str(output_dir / "checkpoint-12")
    assert last_complete_checkpoint(str(tmp_path / "missing")) is None


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_sigkill_at_a_random_moment_resumes_to_identical_result(trial, uninterrupted, tmp_path):
    """Killed at an arbitrary time (possibly while a checkpoint is being written), the run still resumes exactly."""
    output_dir = tmp_path / "run"
    process = start_training(output_dir, "--step_sleep", "0.3")
    wait_for(output_dir / "checkpoint-4" / "trainer_state.json", process)
    time.sleep(random.Random(trial).uniform(0.0, 2.5))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert_same_run(finish(output_dir), uninterrupted)
