"""Measured effect of coverage and scheduled sampling on a synthetic task: BLEU, repeated n-grams, speed.

Each option trains the same small Bahdanau model (same seed, data and steps) on sequence reversal of 4-16 words,
then decodes held-out sources of 14-24 words (longer than most of training: where an attention model repeats
or drops words). Prints a markdown table and writes JSON.

    PYTHONPATH=. python benchmarks/beyond_effects.py --steps 600 --out benchmarks/results/beyond_effects.json

Timings are ratios against the baseline in the same run (the machine is shared).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import sacrebleu
import torch

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from hf_simple_s2s.modeling_simple_s2s import teacher_forcing_ratio

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


def run(name: str, overrides: dict, args) -> dict:
    torch.manual_seed(0)
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
    generator = torch.Generator().manual_seed(1)
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
    result = {"option": name, "config": overrides, "final_loss": float(loss), "train_seconds": train_seconds}
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
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--test_size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/beyond_effects.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [run(name, overrides, args) for name, overrides in OPTIONS.items()]
    base = results[0]
    print(
        "| option | BLEU greedy | BLEU beam 4 | repeated 2-grams greedy (reference) | length ratio greedy | train time | decode time |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['option']} | {r['bleu_greedy']:.1f} | {r['bleu_beam4']:.1f} | {100 * r['repeated_2gram_greedy']:.1f}% "
            f"({100 * r['repeated_2gram_reference']:.1f}%) | {r['length_ratio_greedy']:.2f} | "
            f"{r['train_seconds'] / base['train_seconds']:.2f}x | {r['decode_seconds'] / base['decode_seconds']:.2f}x |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
