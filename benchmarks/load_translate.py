"""Load test: translate many sentences in batches (tokenize -> generate -> decode) and watch memory and throughput.

Memory must stay flat (no growth from one batch to the next once warm) and throughput steady. Prints a table per
window of batches and writes JSON. Without `--model_dir`, a randomly initialised model with a small BPE tokenizer
(the one the tests use) stands in for a trained one: the cost per sentence depends on sizes, not on the weights.

    PYTHONPATH=. python benchmarks/load_translate.py --sentences 10000 --batch_size 64
    PYTHONPATH=. python benchmarks/load_translate.py --model_dir outputs/multi30k   # a trained model + tokenizer
"""

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import psutil
import torch
from transformers import AutoTokenizer

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration

REPO_ROOT = Path(__file__).resolve().parent.parent


def synthetic_model_and_tokenizer(seed: int = 0):
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from reversal_task import build_tokenizer

    tokenizer = build_tokenizer(model_max_length=64)
    config = SimpleS2SConfig(vocab_size=len(tokenizer), embedding_size=64, hidden_size=128, dropout=0.0)
    torch.manual_seed(seed)
    return SimpleS2SForConditionalGeneration(config).eval(), tokenizer


def synthetic_sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    return [
        " ".join("".join(rng.choice(letters) for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(3, 30)))
        for _ in range(count)
    ]


def rss_mib() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def run(model, tokenizer, sentences: list[str], batch_size: int, max_new_tokens: int, num_beams: int) -> list[dict]:
    """One record per batch: sentences, wall and CPU seconds, RSS after the batch and the live Python objects."""
    records = []
    for start in range(0, len(sentences), batch_size):
        batch_sentences = sentences[start : start + batch_size]
        began, began_cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            batch = tokenizer(batch_sentences, padding=True, truncation=True, return_tensors="pt")
            generated = model.generate(**batch, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False)
            translations = tokenizer.batch_decode(generated, skip_special_tokens=True)
        seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - began_cpu
        assert len(translations) == len(batch_sentences)
        del batch, generated, translations
        gc.collect()
        records.append(
            dict(
                sentences=len(batch_sentences),
                seconds=seconds,
                cpu_seconds=cpu_seconds,
                rss_mib=rss_mib(),
                objects=len(gc.get_objects()),
            )
        )
    return records


def summarize(records: list[dict], windows: int, warmup_fraction: float) -> dict:
    """Per-window throughput and memory, and the drifts that say whether the load is held."""
    size = max(1, len(records) // windows)
    table = []
    for index in range(0, len(records), size):
        window = records[index : index + size]
        table.append(
            dict(
                batches=f"{index + 1}-{index + len(window)}",
                sentences_per_s=sum(r["sentences"] for r in window) / sum(r["seconds"] for r in window),
                sentences_per_cpu_s=sum(r["sentences"] for r in window) / sum(r["cpu_seconds"] for r in window),
                rss_mib=window[-1]["rss_mib"],
                objects=window[-1]["objects"],
            )
        )
    warm = records[int(len(records) * warmup_fraction) :]
    warm_table = table[int(len(table) * warmup_fraction) :]
    # Judged on CPU time: on a shared machine wall-clock speed follows the other jobs; the work per sentence does not.
    speeds = [row["sentences_per_cpu_s"] for row in warm_table]
    wall_speeds = [row["sentences_per_s"] for row in warm_table]
    # Medians over the first and the last window of warm batches: single readings jump with allocator caching.
    edge = max(1, len(warm) // windows)
    first_rss, last_rss = (statistics.median(r["rss_mib"] for r in part) for part in (warm[:edge], warm[-edge:]))
    return dict(
        windows=table,
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
    )


def print_table(summary: dict) -> None:
    print(f"{'batches':>12} {'sentences/s':>12} {'per CPU s':>10} {'RSS MiB':>9} {'objects':>9}")
    for row in summary["windows"]:
        print(
            f"{row['batches']:>12} {row['sentences_per_s']:>12.1f} {row['sentences_per_cpu_s']:>10.1f} "
            f"{row['rss_mib']:>9.1f} {row['objects']:>9}"
        )
    print(
        f"warm from batch {summary['warm_from_batch']}: RSS growth {summary['rss_growth_mib']:+.1f} MiB, "
        f"live objects {summary['objects_growth']:+d}; sentences per CPU second min/max "
        f"{summary['throughput_min_over_max']:.2f}, last/first {summary['throughput_last_over_first']:.2f} "
        f"(wall clock {summary['wall_throughput_min_over_max']:.2f}, {summary['wall_throughput_last_over_first']:.2f}); "
        f"{summary['sentences_per_s']:.1f} sentences/s, {summary['sentences_per_cpu_s']:.1f} per CPU second"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", help="a saved model folder with its tokenizer (default: synthetic)")
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=24)
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--windows", type=int, default=10, help="rows of the table")
    parser.add_argument("--warmup_fraction", type=float, default=0.1, help="leading share of batches not judged")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steady on a shared box)")
    parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "results" / "load_translate.json"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.model_dir:
        model = SimpleS2SForConditionalGeneration.from_pretrained(args.model_dir).eval()
        tokenizer = AutoTokenizer.from_pretrained(args.model_dir, trust_remote_code=True)
    else:
        model, tokenizer = synthetic_model_and_tokenizer()
    sentences = synthetic_sentences(args.sentences)
    records = run(model, tokenizer, sentences, args.batch_size, args.max_new_tokens, args.num_beams)
    summary = summarize(records, args.windows, args.warmup_fraction)
    print_table(summary)
    result = dict(settings=vars(args), torch_threads=torch.get_num_threads(), **summary, batches=records)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
