"""What every benchmark shares: the reference setting, the command line, median timing, and the JSON record."""

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers

from hf_simple_s2s import SimpleS2SForConditionalGeneration

ATTENTION_TYPES = ("bahdanau", "luong_dot", "luong_general")
RESULTS_DIR = Path(__file__).parent / "results"
# Ids 0-3 are pad, bos, eos and unk: random sources and targets are drawn above them.
FIRST_ORDINARY_ID = 4


@dataclass
class Setting:
    """The size everything is measured at (the classic Multi30k baseline's size)."""

    vocab_size: int = 8000
    embedding_size: int = 256
    hidden_size: int = 512
    batch_size: int = 32
    source_length: int = 20
    target_length: int = 20  # training targets
    new_tokens: int = 30  # decoding, with EOS suppressed so that every run does the same work


QUICK_SETTING = Setting(vocab_size=500, embedding_size=32, hidden_size=48, batch_size=4, new_tokens=6)


def parse_args(description: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few repeats, no targets checked")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per figure (after warm-up)")
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default benchmarks/results/<name>.json)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.setting = QUICK_SETTING if args.quick else Setting()
    return args


def build_model(
    setting: Setting,
    attention_type: str,
    device: str,
    seed: int = 0,
    dropout: float = 0.1,
    model_class: type = SimpleS2SForConditionalGeneration,
) -> SimpleS2SForConditionalGeneration:
    """Our model at the setting: bi-GRU encoder, one layer each side, tied output embedding (the defaults).

    `model_class` may be the class from another revision of the model file (`ab_generate`); same seed, same weights.
    """
    torch.manual_seed(seed)
    config = model_class.config_class(
        vocab_size=setting.vocab_size,
        embedding_size=setting.embedding_size,
        hidden_size=setting.hidden_size,
        attention_type=attention_type,
        dropout=dropout,
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

    The runs are timed round-robin, so that load from other processes on a shared machine hits all of them alike
    within a round; `median_ratio` then compares them round by round.
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


ESTIMATORS = ("wall", "wall_min", "cpu")


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


def environment(args: argparse.Namespace) -> dict:
    """Where and with what the figures were measured."""
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
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
        "setting": asdict(args.setting),
    }


def write_results(name: str, args: argparse.Namespace, figures: dict) -> Path:
    """Write `{environment, figures}` to benchmarks/results/<name>.json (or --output) atomically."""
    path = args.output or RESULTS_DIR / (f"{name}_quick.json" if args.quick else f"{name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps({"environment": environment(args), **figures}, indent=2) + "\n")
    tmp_path.replace(path)
    return path


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    """A plain-text table, numbers shown with 3 significant digits (ratios) or as given (strings)."""
    cells = [[format_cell(value) for value in row] for row in rows]
    widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def format_cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
