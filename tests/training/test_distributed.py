"""Training runs unchanged under `torchrun` (DDP, gloo, 2 CPU processes): the loss goes down, the replicas stay
identical, and the result matches a single process with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reversal_task import loss_curve, make_trainer
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[2]
# Same-length sequences without dropout: every example has the same number of target tokens, so the mean of the
# two processes' mean losses is the single process's mean loss, and no randomness differs between ranks.
TASK = dict(max_steps=12, min_len=6, max_len=6, dropout=0.0, save_steps=100)
# Float sums in another order (two half-batch gradients all-reduced vs one full batch) after 12 Adam steps.
TOLERANCE = dict(rtol=0.0, atol=1e-5)


def task_arguments(per_device_batch_size: int) -> list[str]:
    arguments = [f"--{name}={value}" for name, value in TASK.items()]
    return arguments + [f"--batch_size={per_device_batch_size}"]


def launch(launcher: list[str], output_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    script = [str(REPO_ROOT / "tests" / "reversal_task.py"), f"--output_dir={output_dir}"]
    script += [f"--dump_replicas={output_dir}", *task_arguments(per_device_batch_size=4)]
    result = subprocess.run(launcher + script, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


def assert_matches_single_process(output_dir: Path, tmp_path: Path) -> None:
    replicas = [load_file(output_dir / f"replica-{rank}.safetensors") for rank in (0, 1)]
    curves = [json.loads((output_dir / f"replica-{rank}.json").read_text()) for rank in (0, 1)]
    assert [curve["world_size"] for curve in curves] == [2, 2]
    for name, value in replicas[0].items():
        assert torch.equal(value, replicas[1][name]), f"replicas differ in {name}"
    losses = curves[0]["losses"]
    assert len(losses) == TASK["max_steps"] and losses[-1] < losses[0] - 0.02

    single = make_trainer(str(tmp_path / "single"), batch_size=8, **TASK)  # the same global batch in one process
    single.train()
    torch.testing.assert_close(
        torch.tensor(losses), torch.tensor([loss for _, loss in loss_curve(single)]), **TOLERANCE
    )
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(replicas[0][name], value, **TOLERANCE, msg=f"{name} differs from one process")


def test_torchrun_two_cpu_processes_match_one_process(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    launch(torchrun, tmp_path / "ddp")
    assert_matches_single_process(tmp_path / "ddp", tmp_path)


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_match_one_process(tmp_path):
    # `--multi_gpu` picks accelerate's torch.distributed launcher; without CUDA the processes use gloo on the CPU
    # (`--cpu` would pick the single-process / MPI launcher instead).
    accelerate = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes=2"]
    launch(accelerate + ["--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no"], tmp_path / "ddp")
    assert_matches_single_process(tmp_path / "ddp", tmp_path)
