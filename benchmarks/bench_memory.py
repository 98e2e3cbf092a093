"""Peak memory of training and decoding at the reference setting, each measured in a fresh process.

On CPU the figure is the process's peak resident set size (`resource.getrusage(...).ru_maxrss`), reported twice:
the whole process at its peak, and the growth of that peak over the process just before the workload (torch,
transformers, the model and its inputs already loaded), which is what the workload itself adds. A fresh process
per measurement is needed because the peak RSS of a process never goes down. On CUDA the figure is
`torch.cuda.max_memory_allocated()` (tensors only) with the same before/after split.

    python -m benchmarks.bench_memory [--quick] [--threads 2] [--device cpu|cuda]
"""

import argparse
import json
import resource
import subprocess
import sys

import torch

from benchmarks.classic_seq2seq import ClassicSeq2Seq, classic_training_step, classic_translate
from benchmarks.common import (
    ATTENTION_TYPES,
    QUICK_SETTING,
    Setting,
    build_model,
    parse_args,
    print_table,
    write_results,
)

WORKLOADS = ("train", "greedy", "beam5")
TRAINING_STEPS = 3  # Adam's state exists from the first step on; a few more show nothing leaks
MIB = 2**20


def peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def probe(setting: Setting, model_name: str, workload: str, device: str) -> dict:
    """Runs one workload in this (fresh) process and returns its peak memory before and after, in bytes."""
    from benchmarks.bench_generate import generate_call
    from benchmarks.bench_train import plain_step, training_batches

    batch = training_batches(setting, device, 1)[0]
    if model_name == "classic":
        torch.manual_seed(0)
        model = ClassicSeq2Seq(setting.vocab_size, setting.embedding_size, setting.hidden_size).to(device)
    else:
        model = build_model(setting, model_name, device)
    before = peak_bytes(device)
    if workload == "train":
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
        for _ in range(TRAINING_STEPS):
            if model_name == "classic":
                bos = batch["labels"].new_full((setting.batch_size, 1), 1)
                trg = torch.cat([bos, batch["labels"]], dim=1).t()
                classic_training_step(model, optimizer, batch["input_ids"].t(), trg, pad_token_id=0)
            else:
                plain_step(model, optimizer, batch)
    elif model_name == "classic":  # greedy only: the tutorial has no beam search
        model.eval()
        for source in batch["input_ids"].tolist():
            classic_translate(model, source, 1, 2, setting.new_tokens, ban_eos=True)
    else:
        model.eval()
        num_beams = 5 if workload == "beam5" else 1
        generate_call(model, batch["input_ids"], batch["attention_mask"], setting.new_tokens, num_beams)
    return {"before_bytes": before, "peak_bytes": peak_bytes(device)}


def run_probe_in_this_process_on_cuda(args, model_name: str, workload: str) -> dict:
    """On CUDA the peak can be reset, so no fresh process is needed: only this workload's allocations count."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return probe(args.setting, model_name, workload, args.device)


def run_probe_in_fresh_process(args, model_name: str, workload: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_memory", "--probe", model_name, workload]
    command += ["--threads", str(args.threads), "--device", args.device] + (["--quick"] if args.quick else [])
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    if "--probe" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--probe", nargs=2, metavar=("MODEL", "WORKLOAD"))
        parser.add_argument("--threads", type=int, default=2)
        parser.add_argument("--device", default="cpu")
        parser.add_argument("--quick", action="store_true")
        probe_args = parser.parse_args()
        torch.set_num_threads(probe_args.threads)
        setting = QUICK_SETTING if probe_args.quick else Setting()
        print(json.dumps(probe(setting, *probe_args.probe, probe_args.device)))
        return

    args = parse_args(__doc__.splitlines()[0])
    measurements = {}
    rows = []
    for model_name in (*ATTENTION_TYPES, "classic"):
        workloads = ("train", "greedy") if model_name == "classic" else WORKLOADS
        for workload in workloads:
            if args.device.startswith("cuda"):
                result = run_probe_in_this_process_on_cuda(args, model_name, workload)
            else:
                result = run_probe_in_fresh_process(args, model_name, workload)
            print(f"{model_name} {workload}: {result}", flush=True)
            measurements[f"{model_name}/{workload}"] = result
            rows.append(
                [
                    model_name,
                    workload,
                    result["peak_bytes"] / MIB,
                    (result["peak_bytes"] - result["before_bytes"]) / MIB,
                ]
            )
    kind = "max_memory_allocated" if args.device.startswith("cuda") else "peak RSS"
    print_table(
        f"peak memory ({kind}) on {args.device}, MiB, "
        + ("peak statistics reset before each row" if args.device.startswith("cuda") else "one fresh process per row"),
        ["model", "workload", "peak", "added by workload"],
        rows,
    )
    figures = {"method": kind, "training_steps": TRAINING_STEPS, "measurements": measurements}
    print(f"wrote {write_results('bench_memory', args, figures)}")


if __name__ == "__main__":
    main()
