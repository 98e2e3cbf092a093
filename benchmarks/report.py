"""Markdown tables for benchmarks/README.md from the JSON results: `python -m benchmarks.report [RESULTS_DIR]`."""

import json
import sys
from pathlib import Path

from benchmarks.common import ATTENTION_TYPES, ESTIMATORS, RESULTS_DIR

MIB = 2**20


def markdown_table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += [
        "| " + " | ".join(cell if isinstance(cell, str) else f"{cell:.3g}" for cell in row) + " |" for row in rows
    ]
    return "\n".join(lines)


def verdict(value: float | None, target: float, at_most: bool) -> str:
    if value is None:  # an estimator the run did not record
        return "n/a"
    met = value <= target if at_most else value >= target
    return f"{value:.3g} {'met' if met else 'MISSED'}"


def environment_line(record: dict) -> str:
    env = record["environment"]
    return (
        f"*{env['date_utc']}, {env['device']} ({env['device_name']}), {env['threads']} threads, "
        f"load average {env.get('load_average_1min', float('nan')):.1f} on {env['cpu_count']} cores, "
        f"torch {env['torch']}, transformers {env['transformers']}*"
    )


def generate_section(record: dict) -> str:
    targets = record["targets"]
    rows = []
    for attention_type in ATTENTION_TYPES:
        result = record["attention_types"][attention_type]
        for estimator in ESTIMATORS:
            rows.append(
                [attention_type, estimator]
                + [
                    verdict(result["ratios"][name].get(estimator), target, at_most=True)
                    for name, target in targets.items()
                ]
                + [record["classic"]["speedup_over_classic"][attention_type].get(estimator, "n/a")]
            )
    classic = record["classic"]["sentences_per_second"]
    speeds = [
        [name, classic[f"generate_greedy_{name}"], result["sentences_per_second"]["generate_beam5"]]
        for name, result in record["attention_types"].items()
    ]
    speeds.append(["classic, one sentence at a time", classic["classic_one_by_one"], "-"])
    return "\n\n".join(
        [
            environment_line(record),
            markdown_table(
                [
                    "attention",
                    "estimator",
                    "greedy / hand (≤ 1.10)",
                    "beam 5 / hand (≤ 1.20)",
                    "60 / 30 tokens (≤ 2.1)",
                    "× classic, greedy sentences/s",
                ],
                rows,
            ),
            markdown_table(
                ["model", "greedy sentences/s (rounds shared with the classic)", "beam-5 sentences/s (own rounds)"],
                speeds,
            ),
        ]
    )


def train_section(record: dict) -> str:
    targets = record["targets"]
    trainer = record["trainer_vs_plain"]
    classic = record["ours_vs_classic"]
    rows = [
        [attention_type, classic["tokens_per_second"][attention_type]]
        + [
            verdict(trainer[attention_type]["trainer_vs_plain"].get(estimator), targets["trainer_vs_plain"], False)
            for estimator in ESTIMATORS
        ]
        + [classic["speedup_over_classic"][attention_type].get(estimator, "n/a") for estimator in ESTIMATORS]
        for attention_type in ATTENTION_TYPES
    ]
    rows.append(["classic (tutorial style)", classic["tokens_per_second"]["classic"]] + ["-"] * 3 + [1.0] * 3)
    checks = [
        [name, f"≥ {target}"]
        + [verdict(record["checks"].get(estimator, {}).get(name), target, False) for estimator in ESTIMATORS]
        for name, target in targets.items()
    ]
    return "\n\n".join(
        [
            environment_line(record),
            markdown_table(
                ["model", "plain-loop target tokens/s"]
                + [f"Trainer / plain ({estimator})" for estimator in ESTIMATORS]
                + [f"× classic ({estimator})" for estimator in ESTIMATORS],
                rows,
            ),
            markdown_table(["target", "needed", *ESTIMATORS], checks),
        ]
    )


def memory_section(record: dict) -> str:
    rows = [
        [*name.split("/"), values["peak_bytes"] / MIB, (values["peak_bytes"] - values["before_bytes"]) / MIB]
        for name, values in record["measurements"].items()
    ]
    return "\n\n".join(
        [
            environment_line(record),
            markdown_table(["model", "workload", f"{record['method']} (MiB)", "added by the workload (MiB)"], rows),
        ]
    )


def ab_section(record: dict) -> str:
    rows = [
        [attention_type, estimator] + [result[f"beams{beams}_new_vs_old"].get(estimator, "n/a") for beams in (1, 5)]
        for attention_type, result in record["attention_types"].items()
        for estimator in ESTIMATORS
    ]
    return "\n\n".join(
        [
            environment_line(record),
            markdown_table(
                [
                    "attention",
                    "estimator",
                    f"greedy: new / {record['revision']}",
                    f"beam 5: new / {record['revision']}",
                ],
                rows,
            ),
        ]
    )


SECTIONS = {
    "bench_generate": generate_section,
    "bench_train": train_section,
    "bench_memory": memory_section,
    "ab_generate": ab_section,
}


def main():
    results_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_DIR
    for name, render in SECTIONS.items():
        path = results_dir / f"{name}.json"
        if path.exists():
            print(f"### {name}\n\n{render(json.loads(path.read_text()))}\n")


if __name__ == "__main__":
    main()
