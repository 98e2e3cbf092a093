"""Memory: the peaks of training and decoding at the reference setting, and memory held flat under a long load.

- Peaks (workloads `train`, `greedy`, `beam5`; the classic model has no beam search), one fresh process per figure,
  since the peak of a process never goes down: on the CPU the process's peak resident set size just before the
  workload (torch, transformers, the model and its inputs loaded) and after it (`--repeats` Adam steps or decodings
  of the batch, default 3: more than one shows that nothing piles up). On CUDA `torch.cuda.max_memory_allocated()` (tensors only), its peak reset before each workload.
- Load (workload `load`): translating many sentences in batches of 64 (tokenize, `generate()`, decode) with a small
  model and a BPE tokenizer trained on the fly, or a saved folder (`--model_dir`), recording the resident set size
  and the live Python objects after each batch. Targets over the warm batches: RSS grows by < 20 MiB and live objects
  by < 200; sentences per CPU second, last / first window > 0.7 and slowest / fastest > 0.5 (CPU time: wall time
  follows the other jobs of a shared machine).

    python -m benchmarks.bench_memory [--quick] [--threads 2] [--device cpu|cuda] [--workloads train greedy beam5 load]
        [--sentences 10000] [--warmup_fraction 0.1] [--model_dir DIR]
"""

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks import harness
from benchmarks.baselines.classic_seq2seq import classic_translate
from benchmarks.bench_generate import generate_call
from benchmarks.bench_train import build_classic, classic_step, plain_step, training_batches
from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from hf_simple_s2s.inference.translate import load_translator
from hf_simple_s2s.tokenization import train_tokenizer

PEAK_WORKLOADS = ("train", "greedy", "beam5")
MIB = 2**20
LOAD_BATCH_SIZE, LOAD_NEW_TOKENS, LOAD_WINDOWS = 64, 24, 10
LOAD_MODEL = dict(embedding_size=64, hidden_size=128, dropout=0.0)  # the cost per sentence depends on sizes only


def rss_bytes(field: str = "VmRSS") -> int:
    """The process's resident set size now (`VmRSS`) or at its peak (`VmHWM`), from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return rss_bytes("VmHWM")


def probe(setting: harness.Setting, model_name: str, workload: str, device: str, repeats: int) -> dict:
    """Runs one workload in this process and returns its peak memory before and after, in bytes."""
    batch = training_batches(setting, device, 1)[0]
    classic = model_name == "classic"
    model = build_classic(setting, device) if classic else harness.build_model(setting, model_name, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    before = peak_bytes(device)
    for _ in range(repeats):
        if workload == "train":
            (classic_step if classic else plain_step)(model.train(), optimizer, batch)
        elif classic:  # greedy, one sentence at a time: the tutorial has no beam search
            for source in batch["input_ids"].tolist():
                classic_translate(
                    model.eval(), source, harness.BOS_ID, harness.EOS_ID, setting.new_tokens, ban_eos=True
                )
        else:
            num_beams = 5 if workload == "beam5" else 1
            generate_call(model.eval(), batch["input_ids"], batch["attention_mask"], setting.new_tokens, num_beams)
    return {"before_bytes": before, "peak_bytes": peak_bytes(device)}


def measure_peak(args, model_name: str, workload: str) -> dict:
    if args.device.startswith("cuda"):  # the peak can be reset: only this workload's allocations count
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return probe(args.setting, model_name, workload, args.device, args.repeats)
    command = [sys.executable, "-m", "benchmarks.bench_memory", "--probe", model_name, workload]
    command += ["--threads", str(args.threads), "--device", args.device, "--repeats", str(args.repeats)]
    command += ["--quick"] if args.quick else []
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def synthetic_sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    return [
        " ".join("".join(rng.choice(letters) for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(3, 30)))
        for _ in range(count)
    ]


def load_translator_or_synthetic(model_dir: str | None, device: str):
    if model_dir:
        return load_translator(model_dir, device)
    tokenizer = train_tokenizer(synthetic_sentences(2000, seed=1), vocab_size=200)
    torch.manual_seed(0)
    model = SimpleS2SForConditionalGeneration(SimpleS2SConfig(vocab_size=len(tokenizer), **LOAD_MODEL))
    return model.to(device).eval(), tokenizer


def translate_under_load(model, tokenizer, sentences: list[str], device: str) -> list[dict]:
    """One record per batch: sentences, wall and CPU seconds, RSS after the batch and the live Python objects."""
    records = []
    for start in range(0, len(sentences), LOAD_BATCH_SIZE):
        batch_sentences = sentences[start : start + LOAD_BATCH_SIZE]
        began, began_cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            batch = tokenizer(batch_sentences, padding=True, truncation=True, max_length=64, return_tensors="pt")
            generated = model.generate(**batch.to(device), max_new_tokens=LOAD_NEW_TOKENS, do_sample=False)
            translations = tokenizer.batch_decode(generated, skip_special_tokens=True)
        harness.synchronize(device)
        seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - began_cpu
        assert len(translations) == len(batch_sentences)
        del batch, generated, translations
        gc.collect()
        records.append(
            dict(
                sentences=len(batch_sentences),
                seconds=seconds,
                cpu_seconds=cpu_seconds,
                rss_mib=rss_bytes() / MIB,
                objects=len(gc.get_objects()),
            )
        )
    return records


def summarize_load(records: list[dict], warmup_fraction: float) -> dict:
    """Per-window throughput and memory, and the drifts that say whether the load is held."""
    size = max(1, len(records) // LOAD_WINDOWS)
    windows = []
    for index in range(0, len(records), size):
        window = records[index : index + size]
        windows.append(
            dict(
                batches=f"{index + 1}-{index + len(window)}",
                sentences_per_s=sum(r["sentences"] for r in window) / sum(r["seconds"] for r in window),
                sentences_per_cpu_s=sum(r["sentences"] for r in window) / sum(r["cpu_seconds"] for r in window),
                rss_mib=window[-1]["rss_mib"],
                objects=window[-1]["objects"],
            )
        )
    warm = records[int(len(records) * warmup_fraction) :]
    warm_windows = windows[int(len(windows) * warmup_fraction) :]
    speeds = [row["sentences_per_cpu_s"] for row in warm_windows]
    wall_speeds = [row["sentences_per_s"] for row in warm_windows]
    # Medians over the first and the last window of warm batches: single readings jump with allocator caching.
    edge = max(1, len(warm) // LOAD_WINDOWS)
    first_rss, last_rss = (statistics.median(r["rss_mib"] for r in part) for part in (warm[:edge], warm[-edge:]))
    return dict(
        windows=windows,
        warm_from_batch=len(records) - len(warm) + 1,
        rss_growth_mib=last_rss - first_rss,
        objects_growth=warm[-1]["objects"] - warm[0]["objects"],
        peak_rss_mib=max(r["rss_mib"] for r in records),
        throughput_min_over_max=min(speeds) / max(speeds),
        throughput_last_over_first=speeds[-1] / speeds[0],
        wall_throughput_min_over_max=min(wall_speeds) / max(wall_speeds),
        wall_throughput_last_over_first=wall_speeds[-1] / wall_speeds[0],
        sentences_per_s=sum(r["sentences"] for r in warm) / sum(r["seconds"] for r in warm),
        sentences_per_cpu_s=sum(r["sentences"] for r in warm) / sum(r["cpu_seconds"] for r in warm),
        batches=records,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--workloads", nargs="+", choices=[*PEAK_WORKLOADS, "load"], default=[*PEAK_WORKLOADS, "load"])
    parser.add_argument("--sentences", type=int, default=None, help="load: default 10,000 (--quick: 640)")
    parser.add_argument(
        "--warmup_fraction", type=float, default=None, help="load: leading share of batches not judged"
    )
    parser.add_argument("--model_dir", default=None, help="load: a saved model folder with its tokenizer")
    parser.add_argument("--probe", nargs=2, help=argparse.SUPPRESS)  # MODEL WORKLOAD, in a fresh process
    args = harness.parse_args(parser, argv, repeats=3)
    if args.probe:
        print(json.dumps(probe(args.setting, *args.probe, args.device, args.repeats)))
        return {}

    results, targets = {"method": "max_memory_allocated" if args.device.startswith("cuda") else "peak RSS"}, []
    for model_name in (*harness.ATTENTION_TYPES, "classic"):
        for workload in PEAK_WORKLOADS:
            if workload not in args.workloads or (model_name, workload) == ("classic", "beam5"):
                continue
            measured = measure_peak(args, model_name, workload)
            results[f"{model_name}/{workload}"] = measured
            added = (measured["peak_bytes"] - measured["before_bytes"]) / MIB
            targets.append(harness.target(f"{workload}: memory added at the peak, MiB", model_name, added))
    setting = asdict(args.setting)
    if "load" in args.workloads:
        sentences = synthetic_sentences(args.sentences or (640 if args.quick else 10_000))
        warmup_fraction = args.warmup_fraction if args.warmup_fraction is not None else (0.5 if args.quick else 0.1)
        model, tokenizer = load_translator_or_synthetic(args.model_dir, args.device)
        load = summarize_load(translate_under_load(model, tokenizer, sentences, args.device), warmup_fraction)
        results["load"] = load
        setting["load"] = dict(
            sentences=len(sentences), batch_size=LOAD_BATCH_SIZE, new_tokens=LOAD_NEW_TOKENS, model_dir=args.model_dir
        )
        setting["load"].update({} if args.model_dir else LOAD_MODEL)
        case = f"{len(sentences)} sentences"
        targets += [
            harness.target("load: RSS growth over the warm batches, MiB", case, load["rss_growth_mib"], "< 20"),
            harness.target("load: live Python objects growth", case, load["objects_growth"], "< 200"),
            harness.target(
                "load: sentences per CPU s, last / first window", case, load["throughput_last_over_first"], "> 0.7"
            ),
            harness.target(
                "load: sentences per CPU s, min / max window", case, load["throughput_min_over_max"], "> 0.5"
            ),
        ]
    return harness.finish("bench_memory", args, results, targets, setting)


if __name__ == "__main__":
    main()
