"""Translating many sentences in batches holds memory flat and throughput steady (the load workload of
benchmarks/bench_memory.py).

The full 10,000-sentence run is slow-marked; CI runs a short one that checks the same figures more loosely."""

from pathlib import Path

import pytest

from benchmarks import bench_memory


def run_benchmark(tmp_path: Path, sentences: int, warmup_fraction: float) -> dict:
    output = tmp_path / "load.json"
    arguments = ["--workloads=load", f"--sentences={sentences}", f"--warmup_fraction={warmup_fraction}", "--threads=1"]
    result = bench_memory.main([*arguments, f"--output={output}"])["results"]["load"]
    assert output.is_file() and sum(batch["sentences"] for batch in result["batches"]) == sentences
    return result


def test_short_load_holds_memory_and_objects(tmp_path):
    result = run_benchmark(tmp_path, sentences=640, warmup_fraction=0.5)  # the allocator settles within ~5 batches
    assert result["rss_growth_mib"] < 20
    assert result["objects_growth"] < 200  # nothing piles up in Python between batches


@pytest.mark.slow
def test_ten_thousand_sentences_hold_memory_flat_and_throughput_steady(tmp_path):
    result = run_benchmark(tmp_path, sentences=10_000, warmup_fraction=0.1)
    assert result["rss_growth_mib"] < 20  # medians of the first and last warm windows; a leak of 1 KiB/sentence shows
    assert result["objects_growth"] < 200
    # Sentences per CPU second of this process (wall-clock speed follows the other jobs of a shared machine), with
    # room for cache and frequency noise; a slowdown that grows with the sentences translated still fails these.
    assert result["throughput_last_over_first"] > 0.7
    assert result["throughput_min_over_max"] > 0.5
