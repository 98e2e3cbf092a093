"""Resume with the job's defaults (`group_by_length` batches, dropout, label smoothing): interrupted mid-epoch by
Ctrl-C or SIGKILL at several steps, in one process and in two, the run ends with the bytes of an uninterrupted one."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from main_job_helpers import tiny_run_args, write_small_corpus
from safetensors.torch import load_file
from transformers import Seq2SeqTrainer

from hf_simple_s2s.training.arguments import verified_checkpoint
from hf_simple_s2s.training.checkpoints import complete_checkpoints
from hf_simple_s2s.training.main import main
from hf_simple_s2s.training.sampling import EpochSeededLengthGroupedSampler

REPO_ROOT = Path(__file__).resolve().parents[2]
# 240 pairs in batches of 32: 8 steps an epoch; checkpoints at 3, 6, 9, 12, of which 9 is mid-way through epoch 2,
# where the order of the batches is drawn after the dropout of a whole epoch.
MAX_STEPS, SAVE_STEPS = 12, 3


def job_arguments(data_dir: Path, output_dir: Path) -> list[str]:
    # Logging at the checkpoints as the presets do (900 = 18 x 50 steps): a log whose window a resume splits averages
    # only the steps after it (transformers' logging).
    every = f"={SAVE_STEPS}"
    arguments = tiny_run_args(data_dir, output_dir, max_steps=MAX_STEPS)
    return [*arguments, f"--save_steps{every}", f"--eval_steps{every}", f"--logging_steps{every}"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_small_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("uninterrupted") / "model"
    main(job_arguments(data_dir, output_dir))
    return output_dir


def assert_same_training(resumed: Path, reference: Path) -> None:
    """The last checkpoint's weights (bytes), optimizer and scheduler state and logged losses are the reference's."""
    last = f"training_state/checkpoint-{MAX_STEPS}"
    assert (resumed / last / "model.safetensors").read_bytes() == (reference / last / "model.safetensors").read_bytes()
    for name in ("optimizer.pt", "scheduler.pt"):
        ours, theirs = (torch.load(run / last / name, weights_only=True) for run in (resumed, reference))
        assert_equal_nested(ours, theirs, name)
    losses = [
        [(entry["step"], entry.get("loss"), entry.get("eval_loss")) for entry in state["log_history"]]
        for state in (json.loads((run / last / "trainer_state.json").read_text()) for run in (resumed, reference))
    ]
    assert losses[0] == losses[1]
    assert load_file(resumed / "model.safetensors").keys() == load_file(reference / "model.safetensors").keys()


def assert_equal_nested(ours, theirs, where: str) -> None:
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), where
        for key in ours:
            assert_equal_nested(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_equal_nested(a, b, f"{where}[{i}]")
    elif isinstance(ours, torch.Tensor):
        assert torch.equal(ours, theirs), f"{where} differs"
    else:
        assert ours == theirs, where


def test_ctrl_c_mid_epoch_then_resume_gives_the_uninterrupted_bytes(data_dir, uninterrupted, tmp_path, monkeypatch):
    """In-process Ctrl-C during step 9 (epoch 2): the job saves checkpoint-9 and --resume ends identically."""
    original_training_step = Seq2SeqTrainer.training_step

    def training_step(self, *args, **kwargs):
        if self.state.global_step == 8:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C during the ninth step
        return original_training_step(self, *args, **kwargs)

    monkeypatch.setattr(Seq2SeqTrainer, "training_step", training_step)
    output_dir = tmp_path / "model"
    with pytest.raises(SystemExit):
        main(job_arguments(data_dir, output_dir))
    assert (output_dir / "training_state" / "checkpoint-9").is_dir() and not (
        output_dir / "training_state" / "checkpoint-12"
    ).exists()
    monkeypatch.setattr(Seq2SeqTrainer, "training_step", original_training_step)
    main([*job_arguments(data_dir, output_dir), "--resume"])
    assert_same_training(output_dir, uninterrupted)


KILLER = """
import os, signal, sys
from transformers import Seq2SeqTrainer
from hf_simple_s2s.training.arguments import verified_checkpoint
from hf_simple_s2s.training.checkpoints import complete_checkpoints
from hf_simple_s2s.training.main import main
from hf_simple_s2s.training.sampling import EpochSeededLengthGroupedSampler
kill_at = int(sys.argv[1])
original = Seq2SeqTrainer.training_step
def training_step(self, *args, **kwargs):
    if self.state.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, *args, **kwargs)
Seq2SeqTrainer.training_step = training_step
main(sys.argv[2:])
"""


ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def run(command: list[str], expected_returncode: int) -> None:
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == expected_returncode, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [4, 7, 10])
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_bytes(kill_at, data_dir, uninterrupted, tmp_path):
    """SIGKILL at the start of step `kill_at + 1`: the last checkpoint is 1 step older, mid-epoch each time."""
    output_dir = tmp_path / "model"
    run([sys.executable, "-c", KILLER, str(kill_at), *job_arguments(data_dir, output_dir)], -signal.SIGKILL)
    assert not (output_dir / "training_state" / f"checkpoint-{MAX_STEPS}").exists()
    main([*job_arguments(data_dir, output_dir), "--resume"])
    assert_same_training(output_dir, uninterrupted)


@pytest.mark.slow
def test_two_processes_killed_mid_epoch_resume_to_the_uninterrupted_bytes(data_dir, tmp_path):
    """torchrun, 2 CPU processes (gloo), 4 steps an epoch: both SIGKILLed at the start of step 8, the last checkpoint
    is step 6, mid-way through epoch 2; `--resume` under torchrun ends as the uninterrupted two-process run."""
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    run([*TORCHRUN, str(REPO_ROOT / "examples" / "train_multi30k.py"), *job_arguments(data_dir, reference)], 0)
    run([*TORCHRUN, str(killer), "7", *job_arguments(data_dir, resumed)], 1)
    assert (resumed / "training_state" / "checkpoint-6").is_dir() and not (
        resumed / "training_state" / "checkpoint-9"
    ).exists()
    script = [str(REPO_ROOT / "examples" / "train_multi30k.py"), *job_arguments(data_dir, resumed), "--resume"]
    run([*TORCHRUN, *script], 0)
    assert_same_training(resumed, reference)


def test_length_grouped_order_is_a_function_of_seed_and_epoch():
    lengths = [(7 * i) % 23 + 1 for i in range(200)]
    orders = {}
    for epoch in (0, 1, 0):
        sampler = EpochSeededLengthGroupedSampler(batch_size=8, lengths=lengths, seed=42)
        torch.manual_seed(epoch + 100)  # the global RNG (dropout's) plays no part
        sampler.set_epoch(epoch)
        orders.setdefault(epoch, []).append(list(sampler))
    assert orders[0][0] == orders[0][1] != orders[1][0]
    assert sorted(orders[1][0]) == list(range(200))


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.pt"])
def test_a_damaged_checkpoint_is_refused_naming_the_file_and_the_last_intact_one(
    damaged, data_dir, uninterrupted, tmp_path, capsys
):
    output_dir = tmp_path / "model"
    shutil.copytree(uninterrupted, output_dir)
    last = output_dir / "training_state" / f"checkpoint-{MAX_STEPS}"
    data = bytearray((last / damaged).read_bytes())
    data[-5] ^= 0x10  # one bit inside the tensor data: the file still parses
    (last / damaged).write_bytes(bytes(data))
    with pytest.raises(SystemExit) as exit_info:
        main([*job_arguments(data_dir, output_dir), "--resume"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{last / damaged} is corrupted" in error
    earlier = complete_checkpoints(str(output_dir / "training_state"), require_checksums=True)[
        1
    ]  # save_total_limit keeps the best too
    assert f"resume from {earlier}, the last intact one" in error

    # a checkpoint killed before its checksums were written counts as cut off: the one before it is resumed from
    (last / "checksums.sha256").unlink()
    assert verified_checkpoint(output_dir) == earlier
