"""The harness every benchmark runs on: the reference setting, one command line, round-robin timing by the wall and
CPU clocks, and one JSON record (environment, setting, results, targets).

    python -m benchmarks.harness benchmarks/results/*.json   # the targets table of each result file
"""

import argparse
import json
import operator
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers

from hf_simple_s2s import SimpleS2SForConditionalGeneration

ATTENTION_TYPES = ("bahdanau", "luong_dot", "luong_general")
RESULTS_DIR = Path(__file__).parent / "results"
# Ids 0-3 are pad, bos, eos and unk (the config's defaults): random sources and targets are drawn above them.
PAD_ID, BOS_ID, EOS_ID, FIRST_ORDINARY_ID = 0, 1, 2, 4
ESTIMATORS = ("wall", "wall_min", "cpu")


@dataclass
class Setting:
    """The size everything is measured at (the classic Multi30k baseline's size)."""

    vocab_size: int = 8000
    embedding_size: int = 256
    hidden_size: int = 512
    batch_size: int = 32
    source_length: int = 20
    target_length: int = 20  # training targets
    new_tokens: int = 30  # decoding, with EOS banned so that every run does the same work


QUICK_SETTING = Setting(vocab_size=500, embedding_size=32, hidden_size=48, batch_size=4, new_tokens=6)


def argument_parser(docstring: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes; a script adds its own to the parser."""
    parser = argparse.ArgumentParser(description=docstring, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few repeats")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per figure (after one warm-up)")
    parser.add_argument("--output", type=Path, default=None, help="default: benchmarks/results/<script>.json")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None, repeats: int) -> argparse.Namespace:
    """Parses the command line and applies it: threads, the setting, `repeats` rounds (3 with `--quick`)."""
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.setting = QUICK_SETTING if args.quick else Setting()
    args.repeats = args.repeats or (3 if args.quick else repeats)
    return args


def build_model(
    setting: Setting,
    attention_type: str,
    device: str,
    seed: int = 0,
    dropout: float = 0.1,
    model_class: type = SimpleS2SForConditionalGeneration,
    **config_overrides,
) -> SimpleS2SForConditionalGeneration:
    """Our model at the setting: bi-GRU encoder, one layer each side, tied output embedding (the defaults).

    `model_class` may be the class from another revision of the model file; same seed, same weights.
    """
    torch.manual_seed(seed)
    config = model_class.config_class(
        vocab_size=setting.vocab_size,
        embedding_size=setting.embedding_size,
        hidden_size=setting.hidden_size,
        attention_type=attention_type,
        dropout=dropout,
        **config_overrides,
    )
    return model_class(config).to(device)


def random_ids(batch_size: int, length: int, vocab_size: int, device: str, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(FIRST_ORDINARY_ID, vocab_size, (batch_size, length), generator=generator, device="cpu")
    return ids.to(device)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Timings(dict):
    """Seconds per run and round, `{run name: [seconds, ...]}` by the wall clock, with the same by the process's
    CPU clock in `.cpu`. On a shared machine the wall clock also counts the time this process waited for a core;
    the CPU clock does not, so its ratios are the steadier ones there (on an idle machine the two agree)."""

    def __init__(self, names):
        super().__init__({name: [] for name in names})
        self.cpu = {name: [] for name in names}


class timed:
    """`with timed(timings, name, device):` appends the wall and CPU seconds of the block to `timings[name]`."""

    def __init__(self, timings: Timings, name: str, device: str):
        self.timings, self.name, self.device = timings, name, device

    def __enter__(self):
        synchronize(self.device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc_info):
        synchronize(self.device)
        self.timings[self.name].append(time.perf_counter() - self.wall)
        self.timings.cpu[self.name].append(time.process_time() - self.cpu)


def interleaved_times(runs: dict[str, Callable[[], object]], device: str, repeats: int, warmup: int = 1) -> Timings:
    """Times each run over `repeats` rounds, after `warmup` untimed rounds.

    The runs take turns within each round, so that load from other processes on a shared machine hits all of them
    alike; `ratios` then compares them round by round.
    """
    for _ in range(warmup):
        for run in runs.values():
            run()
    timings = Timings(runs)
    for _ in range(repeats):
        for name, run in runs.items():
            with timed(timings, name, device):
                run()
    return timings


def median_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of time(numerator) / time(denominator), both measured in the same round."""
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator], strict=True))


def ratios(timings: Timings, numerator: str, denominator: str) -> dict[str, float]:
    """The ratio by three estimators (`ESTIMATORS`): the median of per-round ratios by the wall clock (the headline
    figure) and by the CPU clock, and the ratio of the fastest rounds by the wall clock, which on a busy machine is
    the least disturbed (other processes only ever add time)."""
    return {
        "wall": median_ratio(timings, numerator, denominator),
        "wall_min": min(timings[numerator]) / min(timings[denominator]),
        "cpu": median_ratio(timings.cpu, numerator, denominator),
    }


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}


def rounds(timings: Timings) -> dict:
    """Every timing, for the JSON record."""
    return {"wall_seconds": dict(timings), "cpu_seconds": timings.cpu}


COMPARISONS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}


def target(name: str, case: str, measured, needed: str | None = None) -> dict:
    """One row of a targets table. `measured` is a number, a bool, or a ratio by the three estimators (judged by its
    wall-clock median); `needed` is a comparison such as `"<= 1.1"`, or None for a figure that is only reported."""
    value = measured["wall"] if isinstance(measured, dict) else measured
    met = None
    if needed is not None:
        comparison, bound = needed.split()
        met = bool(COMPARISONS[comparison](value, json.loads(bound)))
    estimators = measured if isinstance(measured, dict) else None
    return {"target": name, "case": case, "needed": needed, "measured": value, "estimators": estimators, "met": met}


def environment(args: argparse.Namespace) -> dict:
    """Where, with what and how the figures were measured."""
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "arguments": {name: value for name, value in vars(args).items() if name != "setting"},
        "machine": platform.machine(),
        "device": args.device,
        "device_name": device_name,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],  # other processes sharing the CPU
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "quick": args.quick,
    }


def finish(name: str, args: argparse.Namespace, results: dict, targets: list[dict], setting: dict | None = None):
    """Writes `{environment, setting, results, targets}` to benchmarks/results/<name>.json (`<name>_quick.json` with
    `--quick`, or `--output`), prints the targets table and returns the record."""
    record = {
        "environment": environment(args),
        "setting": asdict(args.setting) if setting is None else setting,
        "results": results,
        "targets": targets,
    }
    path = args.output or RESULTS_DIR / (f"{name}_quick.json" if args.quick else f"{name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    tmp_path.replace(path)
    print(f"\n{targets_table(record)}\n\nwrote {path}")
    return record


def format_number(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def targets_table(record: dict) -> str:
    """A markdown table of the record's targets: the headline figure, the other estimators, met or not."""
    env = record["environment"]
    lines = [
        f"*{env['date_utc']}, {env['device']} ({env['device_name']}), {env['threads']} threads, load average "
        f"{env['load_average_1min']:.1f} on {env['cpu_count']} cores, torch {env['torch']}: `{env['command']}`*",
        "",
        "| target | case | needed | measured (a ratio: wall; wall_min; cpu) | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in record["targets"]:
        measured = format_number(row["measured"])
        if row["estimators"]:
            measured = "; ".join(format_number(row["estimators"][name]) for name in ESTIMATORS)
        verdict = {True: "met", False: "**missed**", None: "reported"}[row["met"]]
        lines.append(f"| {row['target']} | {row['case']} | {row['needed'] or '-'} | {measured} | {verdict} |")
    return "\n".join(lines)


def main(paths: Sequence[str]) -> None:
    for path in paths:
        record = json.loads(Path(path).read_text())
        if "targets" not in record or not isinstance(record["targets"], list):
            print(f"## {path}\n\n(written before the harness: see the script of its commit)\n")
            continue
        print(f"## {path}\n\n{targets_table(record)}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
