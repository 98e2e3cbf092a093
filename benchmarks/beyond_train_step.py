"""Cost of one training step (forward + backward) with scheduled sampling or coverage, per attention type.

    PYTHONPATH=. python benchmarks/beyond_train_step.py

Batch 64, 17 source and 17 target tokens, emb 48, hidden 96, one thread; scheduled sampling at ratio 0.5 (the
stepwise path). Medians of rounds taken in turn across the options, printed as ratios to teacher forcing.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/beyond_train_step.json")
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
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
