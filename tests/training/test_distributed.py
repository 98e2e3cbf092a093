"""Training runs unchanged under `torchrun` (DDP, gloo, 2 CPU processes): the loss goes down, the replicas stay
identical, and the result matches a single process with the same global batch. The main job itself runs data-parallel
without extra flags, writes and prints once, and evaluates as one process would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from main_job_helpers import tiny_run_args, write_small_corpus
from reversal_task import loss_curve, make_trainer
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_simple_s2s.data import load_parallel_corpus
from hf_simple_s2s.training.arguments import UsageError, check_launch, parse_arguments
from hf_simple_s2s.training.main import build_trainer, tokenize_splits

REPO_ROOT = Path(__file__).resolve().parents[2]
# Same-length sequences without dropout: every example has the same number of target tokens, so the mean of the
# two processes' mean losses is the single process's mean loss, and no randomness differs between ranks.
TASK = dict(max_steps=12, min_len=6, max_len=6, dropout=0.0, save_steps=100)
# Float sums in another order (two half-batch gradients all-reduced vs one full batch) after 12 Adam steps.
TOLERANCE = dict(rtol=0.0, atol=1e-5)


def task_arguments(per_device_batch_size: int) -> list[str]:
    arguments = [f"--{name}={value}" for name, value in TASK.items()]
    return arguments + [f"--batch_size={per_device_batch_size}"]


ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def launch(launcher: list[str], output_dir: Path) -> None:
    script = [str(REPO_ROOT / "tests" / "reversal_task.py"), f"--output_dir={output_dir}"]
    script += [f"--dump_replicas={output_dir}", *task_arguments(per_device_batch_size=4)]
    result = subprocess.run(launcher + script, env=ENV, capture_output=True, text=True, timeout=600)
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
    launch(TORCHRUN, tmp_path / "ddp")
    assert_matches_single_process(tmp_path / "ddp", tmp_path)


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_match_one_process(tmp_path):
    # `--multi_gpu` picks accelerate's torch.distributed launcher; without CUDA the processes use gloo on the CPU
    # (`--cpu` would pick the single-process / MPI launcher instead).
    accelerate = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes=2"]
    launch(accelerate + ["--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no"], tmp_path / "ddp")
    assert_matches_single_process(tmp_path / "ddp", tmp_path)


@pytest.mark.slow
def test_main_job_under_torchrun_is_data_parallel_writes_once_and_evaluates_as_one_process(tmp_path):
    """The job's defaults, no `--use_cpu`: two processes share the batches, the main one alone prints and saves."""
    data_dir, output_dir = write_small_corpus(tmp_path), tmp_path / "model"
    # one sentence per generate() call: an untrained model's near-ties could flip with the padding of another batch
    arguments = [*tiny_run_args(data_dir, output_dir), "--per_device_eval_batch_size=1"]
    script = [str(REPO_ROOT / "examples" / "train_multi30k.py"), *arguments]
    result = subprocess.run(TORCHRUN + script, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("training on 240 pairs in 2 processes") == 1
    assert result.stdout.count("validation greedy") == 1, "the results table is printed once"
    assert not list(output_dir.glob(".save_staging-*"))

    state = json.loads((output_dir / "training_state" / "checkpoint-4" / "trainer_state.json").read_text())
    # 240 pairs in global batches of 2 x 32: 4 steps an epoch (one process with batch 32 needs 8)
    assert state["epoch"] == 1.0 and state["global_step"] == 4

    # Evaluation during training (distributed: each process generates for a shard) equals one process's.
    job_args, training_args = parse_arguments([*arguments, "--report_to", "none"])  # no TensorBoard writer in ./runs
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    splits = load_parallel_corpus(data_dir, "de", "en")
    model = AutoModelForSeq2SeqLM.from_pretrained(output_dir / "training_state" / "checkpoint-4")
    trainer = build_trainer(job_args, training_args, model, tokenizer, tokenize_splits(splits, tokenizer, job_args))
    one_process = trainer.evaluate()
    logged = next(entry for entry in state["log_history"] if "eval_chrf" in entry and entry["step"] == 4)
    assert one_process["eval_chrf"] == logged["eval_chrf"] and one_process["eval_bleu"] == logged["eval_bleu"]
    torch.testing.assert_close(one_process["eval_loss"], logged["eval_loss"], rtol=0, atol=1e-4)


def test_accelerate_cpu_launch_of_one_process_for_several_is_refused(monkeypatch):
    # what `accelerate launch --cpu --num_processes 2` (no MPI hostfile) hands its single process
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="accelerate launch --cpu starts one process"):
        parse_arguments([])
    monkeypatch.setenv("WORLD_SIZE", "2")  # several processes after all (mpirun)
    check_launch()
