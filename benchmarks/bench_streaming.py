"""`--streaming`: the main job on a corpus larger than one wants in memory, against the in-memory path.

A synthetic corpus of `--pairs` (default 5,000,000) training pairs is written to `--corpus_dir` (under /tmp, never
committed; reused when it is there already): Multi30k training pairs drawn at random, one or two joined per pair,
as one TSV file. The tiny preset (evaluation and saving off) then trains `--steps` steps in a fresh process per path:
- streaming on the whole corpus (`--streaming`, its defaults: shuffle buffer, tokenizer sample);
- in memory on the first `--memory_pairs` pairs of the same corpus (same lengths; all of it would not fit in memory);
recording the resident set size (psutil RSS, data-loader workers included) at step 100 and at the end, the seconds from the start (data loading,
tokenizer training included) to the end of the first step, and the time of the steps after the first (data loading
between the steps included) by the wall and CPU clocks. Targets: RSS growth from step 100 to the end <= 200 MB
(streaming), first step < 60 s, streaming throughput >= 0.9x in memory over the same number of steps.

    python -m benchmarks.bench_streaming [--quick] [--pairs 5000000] [--steps 300] [--memory_pairs 100000]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from transformers import TrainerCallback

from benchmarks import harness
from hf_simple_s2s.data import MULTI30K_DIR, read_lines
from hf_simple_s2s.training.arguments import parse_arguments
from hf_simple_s2s.training.main import (
    bucketed_if_streaming,
    build_model,
    build_trainer,
    load_splits,
    tokenize_splits,
    train_job_tokenizer,
)

MB = 10**6
RSS_STEP = 100  # the first RSS figure: buffers filled, the model and optimizer state allocated


def write_corpus(folder: Path, pairs: int, seed: int = 0) -> Path:
    """`pairs` Multi30k training pairs, one or two (joined by a space) drawn at random per line, as `train.tsv` (a
    smaller corpus of the same seed is the larger one's beginning); the Multi30k validation and test pairs (the first
    100) as `val.tsv` and `test.tsv`. Kept for the next run."""
    done = folder / f"done-{pairs}-{seed}"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    german, english = (
        [line.replace("\t", " ") for line in read_lines(MULTI30K_DIR / f"train.{lang}.gz")] for lang in ("de", "en")
    )
    rng = random.Random(seed)
    with open(folder / "train.tsv", "w", encoding="utf-8") as f:
        for start in range(0, pairs, 100_000):
            lines = []
            for _ in range(min(100_000, pairs - start)):
                chosen = rng.sample(range(len(german)), rng.randint(1, 2))
                lines.append(" ".join(german[i] for i in chosen) + "\t" + " ".join(english[i] for i in chosen) + "\n")
            f.write("".join(lines))
    for name, stem in (("val", "val"), ("test", "test_2016_flickr")):
        sources, targets = (read_lines(MULTI30K_DIR / f"{stem}.{lang}.gz")[:100] for lang in ("de", "en"))
        (folder / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in zip(sources, targets, strict=True)))
    done.touch()
    return folder


class Probe(TrainerCallback):
    """RSS at step `RSS_STEP` and at the last step; the wall and CPU seconds of each step after the first."""

    def __init__(self, started: float):
        self.started = started
        self.first_step_s = None
        self.rss = {}
        self.timings = harness.Timings(["step"])
        self.step = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.step is None:
            self.first_step_s = time.perf_counter() - self.started
        else:  # from the last step's end: data loading, collating, the step, the bookkeeping
            self.step.__exit__()
        if state.global_step == RSS_STEP:
            self.rss["at_step_100"] = resident_bytes()
        if state.global_step == state.max_steps:  # the data loader's workers still run
            self.rss["at_end"] = resident_bytes()
        self.step = harness.timed(self.timings, "step", "cpu")
        self.step.__enter__()


def resident_bytes() -> int:
    """RSS of this process and its children (the data loader's workers)."""
    process = psutil.Process()
    return sum(each.memory_info().rss for each in [process, *process.children(recursive=True)])


def measure(path: str, corpus: Path, steps: int, threads: int, workers: int) -> dict:
    """The main job's data -> tokenizer -> model -> Trainer, as `main.run` does it, for `steps` steps (one path)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as output_dir:
        argv = [
            f"--data_dir={corpus}",
            f"--output_dir={output_dir}",
            f"--max_steps={steps}",
            f"--torch_threads={threads}",
        ]
        argv += ["--eval_strategy=no", "--save_strategy=no", "--load_best_model_at_end=false", "--report_to=none"]
        argv += ["--disable_tqdm=true", f"--logging_steps={steps}"]
        argv += ["--streaming", f"--dataloader_num_workers={workers}"] if path == "streaming" else []
        job_args, training_args = parse_arguments(argv)
        splits = load_splits(job_args)
        tokenizer = train_job_tokenizer(splits["train"], job_args)
        tokenized = tokenize_splits(splits, tokenizer, job_args)
        tokenized["train"] = bucketed_if_streaming(tokenized["train"], job_args, training_args)
        model = build_model(job_args, len(tokenizer), training_args.label_smoothing_factor)
        probe = Probe(started)
        trainer = build_trainer(job_args, training_args, model, tokenizer, tokenized, [probe])
        trainer.train()
    return {
        "first_step_s": probe.first_step_s,
        "rss_bytes": probe.rss,
        "rss_growth_mb": (probe.rss["at_end"] - probe.rss["at_step_100"]) / MB,
        "steps_after_first": harness.rounds(probe.timings),
        "tokenizer_sample_pairs": job_args.tokenizer_sample_size if job_args.streaming else len(splits["train"]),
        "load_average_1min_after": os.getloadavg()[0],
    }


def measure_in_child(args, path: str, corpus: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_streaming", "--measure", path, "--corpus_dir", str(corpus)]
    command += ["--steps", str(args.steps), "--threads", str(args.threads), "--workers", str(args.workers)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def throughput_ratio(streaming: dict, in_memory: dict) -> dict[str, float]:
    """Steps per second of streaming / in memory over the steps after the first, by the harness's estimators."""
    ratio = {}
    for estimator, clock, reduce in (
        ("wall", "wall_seconds", sum),
        ("wall_min", "wall_seconds", min),
        ("cpu", "cpu_seconds", sum),
    ):
        ratio[estimator] = reduce(in_memory["steps_after_first"][clock]["step"]) / reduce(
            streaming["steps_after_first"][clock]["step"]
        )
    return ratio


def main(argv: list[str] | None = None) -> dict:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--pairs", type=int, default=None, help="synthetic training pairs (default 5,000,000)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per path (default 300)")
    parser.add_argument("--memory_pairs", type=int, default=None, help="the in-memory path's pairs (default 100,000)")
    parser.add_argument("--corpus_dir", type=Path, default=None, help="default: /tmp/simple_s2s_streaming")
    parser.add_argument("--workers", type=int, default=1, help="streaming: --dataloader_num_workers (default 1)")
    parser.add_argument("--measure", choices=["streaming", "in_memory"], help=argparse.SUPPRESS)
    args = harness.parse_args(parser, argv, repeats=1)
    if args.measure:  # the child process of one path: its figures as the last line of stdout
        print(json.dumps(measure(args.measure, args.corpus_dir, args.steps, args.threads, args.workers)))
        return {}
    args.pairs = args.pairs or (20_000 if args.quick else 5_000_000)
    args.steps = args.steps or (RSS_STEP + 10 if args.quick else 300)
    args.memory_pairs = args.memory_pairs or (5_000 if args.quick else 100_000)
    args.corpus_dir = args.corpus_dir or Path(tempfile.gettempdir()) / "simple_s2s_streaming"
    generating = time.perf_counter()
    corpus = write_corpus(args.corpus_dir / str(args.pairs), args.pairs)
    corpus_s = time.perf_counter() - generating
    small_corpus = write_corpus(args.corpus_dir / str(args.memory_pairs), args.memory_pairs)
    load = {"before": os.getloadavg()[0]}
    results = {
        "in_memory": measure_in_child(args, "in_memory", small_corpus),
        "streaming": measure_in_child(args, "streaming", corpus),
    }
    load["after"] = os.getloadavg()[0]
    results.update(corpus_pairs=args.pairs, corpus_bytes=(corpus / "train.tsv").stat().st_size)
    results.update(corpus_write_s=corpus_s, load_average_1min=load)
    ratio = throughput_ratio(results["streaming"], results["in_memory"])
    results["throughput_streaming_vs_in_memory"] = ratio
    streaming, in_memory = results["streaming"], results["in_memory"]
    targets = [
        harness.target("RSS growth, step 100 to end (MB)", "streaming", streaming["rss_growth_mb"], "<= 200"),
        harness.target("RSS growth, step 100 to end (MB)", "in memory", in_memory["rss_growth_mb"]),
        harness.target("RSS at the end (MB)", "streaming", streaming["rss_bytes"]["at_end"] / MB),
        harness.target("RSS at the end (MB)", "in memory", in_memory["rss_bytes"]["at_end"] / MB),
        harness.target("time to the first step (s)", "streaming", streaming["first_step_s"], "< 60"),
        harness.target("time to the first step (s)", "in memory", in_memory["first_step_s"]),
        harness.target("steps/s, streaming / in memory", f"{args.steps} steps", ratio, ">= 0.9"),
    ]
    setting = {"preset": "tiny", "steps": args.steps, "pairs": args.pairs, "memory_pairs": args.memory_pairs}
    setting["streaming_dataloader_num_workers"] = args.workers
    return harness.finish("bench_streaming", args, results, targets, setting=setting)


if __name__ == "__main__":
    main()
