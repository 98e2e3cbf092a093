"""Cost of one training step (forward + backward) with scheduled sampling or coverage, per attention type, and
of `generate()` with coverage.

    PYTHONPATH=. python benchmarks/beyond_step_costs.py

Training: batch 64, 17 source and 17 target tokens, emb 48, hidden 96; scheduled sampling at ratio 0.5 (the
stepwise path). Decoding: the classic size (emb 256, bi-GRU 512, vocab 8000), batch 32, 30 source tokens, exactly
30 new tokens, greedy and beam 5. One thread; medians of rounds taken in turn across the options, as ratios.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration

OPTIONS = {
    "teacher forcing": {},
    "scheduled sampling": dict(scheduled_sampling="linear", scheduled_sampling_k=2.0),  # ratio 0.5 at step 1
    "coverage": dict(coverage=True),
}


def median_seconds_in_turn(functions: dict, rounds: int) -> dict[str, float]:
    seconds = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


@torch.no_grad()
def coverage_decoding_cost(rounds: int) -> dict:
    input_ids = torch.randint(4, 8000, (32, 30), generator=torch.Generator().manual_seed(0))
    models = {}
    for coverage in (False, True):
        torch.manual_seed(0)
        models[coverage] = SimpleS2SForConditionalGeneration(SimpleS2SConfig(vocab_size=8000, coverage=coverage))
    results = {}
    print("\n| generate(), classic size | without coverage | with coverage |\n| --- | --- | --- |")
    for beams in (1, 5):
        medians = median_seconds_in_turn(
            {
                f"coverage={c}": lambda m=m, b=beams: m.eval().generate(
                    input_ids, max_new_tokens=30, min_new_tokens=30, num_beams=b
                )
                for c, m in models.items()
            },
            rounds,
        )
        results[f"num_beams={beams}"] = medians
        ratio = medians["coverage=True"] / medians["coverage=False"]
        print(f"| num_beams={beams} | 1.00x ({medians['coverage=False']:.2f} s) | {ratio:.2f}x |")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/beyond_step_costs.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(4, 64, (64, 17), generator=generator)
    labels = torch.randint(4, 64, (64, 17), generator=generator)
    results = {}
    print("| attention | " + " | ".join(OPTIONS) + " |")
    print("| --- |" + " --- |" * len(OPTIONS))
    for attention_type in ("bahdanau", "luong_general"):
        models = {}
        for name, overrides in OPTIONS.items():
            torch.manual_seed(0)
            config = SimpleS2SConfig(
                vocab_size=64, embedding_size=48, hidden_size=96, attention_type=attention_type, **overrides
            )
            models[name] = SimpleS2SForConditionalGeneration(config).train()
            models[name].set_training_step(1)
        seconds = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                start = time.perf_counter()
                model(input_ids=input_ids, labels=labels).loss.backward()
                seconds[name].append(time.perf_counter() - start)
                model.zero_grad()
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        results[attention_type] = medians
        base = medians["teacher forcing"]
        print(f"| {attention_type} | " + " | ".join(f"{medians[n] / base:.2f}x" for n in OPTIONS) + " |")
    results["generate_coverage"] = coverage_decoding_cost(args.rounds)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
