"""Measured effect of coverage and scheduled sampling on a synthetic task: BLEU, repeated n-grams, speed.

Each option trains the same small Bahdanau model (same seed, data and steps) on sequence reversal of 4-16 words,
then decodes held-out sources of 14-24 words (longer than most of training: where an attention model repeats
or drops words). Prints a markdown table and writes JSON.

    PYTHONPATH=. python benchmarks/beyond_effects.py --steps 600 --out benchmarks/results/beyond_effects.json

BLEU and repetition are means over `--seeds` (model initialisation and data order). Timings are ratios against
the baseline, measured round-robin after training (one training step on a fixed batch, one greedy decode of the
test set), medians of `--timing_rounds`, so that a shared machine's load hits every option alike.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import sacrebleu
import torch

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from hf_simple_s2s.models.simple_s2s.modeling_simple_s2s import teacher_forcing_ratio

VOCAB_SIZE = 64
OPTIONS = {
    "baseline (teacher forcing)": {},
    "coverage": dict(coverage=True),
    "coverage + coverage loss (1.0)": dict(coverage=True, coverage_loss_weight=1.0),
    "scheduled sampling (inverse sigmoid, k=150)": dict(
        scheduled_sampling="inverse_sigmoid", scheduled_sampling_k=150.0
    ),
}


def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids, (ids != 0).long()


def reversal_batch(size: int, min_len: int, max_len: int, generator: torch.Generator):
    lengths = torch.randint(min_len, max_len + 1, (size,), generator=generator).tolist()
    rows = [torch.randint(4, VOCAB_SIZE, (n,), generator=generator).tolist() for n in lengths]
    input_ids, attention_mask = padded([row + [2] for row in rows])
    labels, label_mask = padded([row[::-1] + [2] for row in rows])
    return input_ids, attention_mask, labels.masked_fill(label_mask == 0, -100), rows


def repeated_ngram_rate(sequences: list[list[int]], n: int) -> float:
    """Share of n-grams that already occurred earlier in the same sequence."""
    repeated = total = 0
    for tokens in sequences:
        seen = set()
        for i in range(len(tokens) - n + 1):
            gram = tuple(tokens[i : i + n])
            repeated += gram in seen
            total += 1
            seen.add(gram)
    return repeated / max(total, 1)


def strip(sequence: list[int]) -> list[int]:
    out = []
    for token in sequence[1:]:  # after the start token, up to eos
        if token == 2:
            break
        out.append(token)
    return out


def run(name: str, overrides: dict, args, seed: int) -> tuple[dict, SimpleS2SForConditionalGeneration]:
    torch.manual_seed(seed)
    config = SimpleS2SConfig(
        vocab_size=VOCAB_SIZE,
        embedding_size=48,
        hidden_size=96,
        attention_type="bahdanau",
        dropout=0.1,
        **overrides,
    )
    model = SimpleS2SForConditionalGeneration(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1000 + seed)
    start = time.perf_counter()
    for step in range(args.steps):
        model.set_training_step(step)  # what ScheduledSamplingCallback does inside Seq2SeqTrainer
        input_ids, attention_mask, labels, _ = reversal_batch(args.batch_size, 4, 16, generator)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    train_seconds = time.perf_counter() - start

    model.eval()
    input_ids, attention_mask, _, rows = reversal_batch(args.test_size, 14, 24, torch.Generator().manual_seed(2))
    start = time.perf_counter()
    with torch.no_grad():
        greedy = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=40)
        beam = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=40, num_beams=4)
    decode_seconds = time.perf_counter() - start
    references = [" ".join(map(str, row[::-1])) for row in rows]
    result = {"option": name, "seed": seed, "config": overrides, "final_loss": loss.item()}
    result["train_seconds"] = train_seconds
    result["decode_seconds"] = decode_seconds
    for search, output in (("greedy", greedy), ("beam4", beam)):
        hypotheses = [strip(sequence) for sequence in output.tolist()]
        result[f"bleu_{search}"] = sacrebleu.corpus_bleu(
            [" ".join(map(str, h)) for h in hypotheses], [references]
        ).score
        result[f"repeated_2gram_{search}"] = repeated_ngram_rate(hypotheses, 2)
        result[f"length_ratio_{search}"] = sum(map(len, hypotheses)) / sum(map(len, rows))
    result["repeated_2gram_reference"] = repeated_ngram_rate([row[::-1] for row in rows], 2)
    result["final_teacher_forcing_ratio"] = teacher_forcing_ratio(
        config.scheduled_sampling, config.scheduled_sampling_k, args.steps - 1
    )
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result, model


def round_robin_seconds(models: list[SimpleS2SForConditionalGeneration], args) -> list[dict]:
    """Median seconds of one training step and of one greedy decode per model, taking turns between models."""
    input_ids, attention_mask, labels, _ = reversal_batch(args.batch_size, 4, 16, torch.Generator().manual_seed(3))
    test_ids, test_mask, _, _ = reversal_batch(args.test_size, 14, 24, torch.Generator().manual_seed(2))
    times = [{"train_step": [], "decode": []} for _ in models]
    for _ in range(args.timing_rounds):
        for model, record in zip(models, times):
            model.train()
            start = time.perf_counter()
            model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
            record["train_step"].append(time.perf_counter() - start)
            model.zero_grad()
            model.eval()
            start = time.perf_counter()
            with torch.no_grad():
                model.generate(test_ids, attention_mask=test_mask, max_new_tokens=40)
            record["decode"].append(time.perf_counter() - start)
    return [{key: statistics.median(values) for key, values in record.items()} for record in times]


def mean(results: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--test_size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--timing_rounds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/beyond_effects.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results, last_models = {name: [] for name in OPTIONS}, []
    for seed in args.seeds:
        last_models = []
        for name, overrides in OPTIONS.items():
            result, model = run(name, overrides, args, seed)
            results[name].append(result)
            last_models.append(model)
    timings = dict(zip(OPTIONS, round_robin_seconds(last_models, args)))  # the last seed's models
    base = timings[next(iter(OPTIONS))]
    print(f"Reversal, {args.steps} training steps, seeds {args.seeds}; test sources of 14-24 words; means over seeds.")
    print(
        "| option | BLEU greedy | BLEU beam 4 | repeated 2-grams, greedy | length ratio | train step | greedy decode |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, runs in results.items():
        print(
            f"| {name} | {mean(runs, 'bleu_greedy'):.1f} | {mean(runs, 'bleu_beam4'):.1f} | "
            f"{100 * mean(runs, 'repeated_2gram_greedy'):.2f}% (reference {100 * mean(runs, 'repeated_2gram_reference'):.2f}%) | "
            f"{mean(runs, 'length_ratio_greedy'):.2f} | {timings[name]['train_step'] / base['train_step']:.2f}x | "
            f"{timings[name]['decode'] / base['decode']:.2f}x |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results, "seconds": timings}, indent=2))


if __name__ == "__main__":
    main()
