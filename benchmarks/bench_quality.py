"""Quality of the options (coverage, its loss, scheduled sampling): BLEU, repeated n-grams and what they cost.

- Default, a synthetic task: each option trains the same small Bahdanau model (same seed, data and steps) on the
  reversal of 4-16 tokens, then decodes held-out sources of 14-24 tokens (longer than most of training: where an
  attention model repeats or drops words). BLEU and the share of repeated 2-grams are means over `--seeds`; the cost
  of a training step and of a greedy decoding against the baseline is timed round-robin afterwards (the last seed's
  models, `--repeats` rounds).
- `--folders DIR...`, real data: trained Multi30k model folders (the main job's output folders, one per option)
  compared on test 2016: lower-cased and cased BLEU of greedy and beam search (each folder's beam settings) and the
  repeated word 2-grams, on all sentences and on the 100 longest sources; the references' own rate is the floor.

    python -m benchmarks.bench_quality [--quick] [--threads 2] [--device cpu|cuda] [--repeats 5] [--steps 800]
        [--seeds 0 1]
    python -m benchmarks.bench_quality --folders outputs/options/*   # writes bench_quality_multi30k.json
    python -m benchmarks.bench_quality --folders RUN1 RUN2 RUN1,RUN2    # two runs, and the two as one ensemble

(A folder per option: `python examples/train_multi30k.py --preset tiny --output_dir outputs/options/coverage
--coverage=true`, and so on.)
"""

import statistics
from pathlib import Path

import sacrebleu
import torch

from benchmarks import harness
from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from hf_simple_s2s.data import MULTI30K_DIR, load_parallel_corpus
from hf_simple_s2s.inference.translate import load_translator, translate

OPTIONS = {
    "baseline (teacher forcing)": {},
    "coverage": dict(coverage=True),
    "coverage + coverage loss (1.0)": dict(coverage=True, coverage_loss_weight=1.0),
    "scheduled sampling (inverse sigmoid, k=150)": dict(
        scheduled_sampling="inverse_sigmoid", scheduled_sampling_k=150.0
    ),
}
# The figures of the targets table (all reported): reversal task and Multi30k folders.
REVERSAL_FIGURES = {
    "bleu_greedy": "BLEU, greedy",
    "bleu_beam4": "BLEU, beam 4",
    "repeated_2grams_greedy": "repeated 2-grams, greedy",
}
FOLDER_FIGURES = {
    ("greedy", "bleu_lowercase"): "BLEU lower-cased, greedy",
    ("beam", "bleu_lowercase"): "BLEU lower-cased, beam",
    ("beam", "repeated_2grams"): "repeated word 2-grams, beam",
    ("beam", "repeated_2grams_longest"): "repeated word 2-grams, beam, 100 longest sources",
}
REVERSAL = dict(vocab_size=64, embedding_size=48, hidden_size=96, batch_size=64, test_size=200, max_new_tokens=40)
QUICK_REVERSAL = dict(REVERSAL, batch_size=16, test_size=16)


def repeated_ngram_rate(sequences: list[list], n: int = 2) -> float:
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


def padded(rows: list[list[int]], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.full((len(rows), max(map(len, rows))), harness.PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids.to(device), (ids != harness.PAD_ID).long().to(device)


def reversal_batch(size: int, min_len: int, max_len: int, generator: torch.Generator, vocab_size: int, device: str):
    lengths = torch.randint(min_len, max_len + 1, (size,), generator=generator).tolist()
    rows = [torch.randint(harness.FIRST_ORDINARY_ID, vocab_size, (n,), generator=generator).tolist() for n in lengths]
    input_ids, attention_mask = padded([row + [harness.EOS_ID] for row in rows], device)
    labels, label_mask = padded([row[::-1] + [harness.EOS_ID] for row in rows], device)
    return input_ids, attention_mask, labels.masked_fill(label_mask == 0, -100), rows


def until_eos(sequence: list[int]) -> list[int]:
    tokens = sequence[1:]  # after the start token
    return tokens[: tokens.index(harness.EOS_ID)] if harness.EOS_ID in tokens else tokens


def train_and_score(overrides: dict, seed: int, args, sizes: dict) -> tuple[dict, SimpleS2SForConditionalGeneration]:
    torch.manual_seed(seed)
    config = SimpleS2SConfig(
        vocab_size=sizes["vocab_size"],
        embedding_size=sizes["embedding_size"],
        hidden_size=sizes["hidden_size"],
        attention_type="bahdanau",
        **overrides,
    )
    model = SimpleS2SForConditionalGeneration(config).to(args.device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1000 + seed)
    for step in range(args.steps):
        model.set_training_step(step)  # what ScheduledSamplingCallback does inside Seq2SeqTrainer
        input_ids, attention_mask, labels, _ = reversal_batch(
            sizes["batch_size"], 4, 16, generator, sizes["vocab_size"], args.device
        )
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    model.eval()
    test = reversal_batch(
        sizes["test_size"], 14, 24, torch.Generator().manual_seed(2), sizes["vocab_size"], args.device
    )
    input_ids, attention_mask, _, rows = test
    references = [row[::-1] for row in rows]
    result = {"final_loss": loss.item(), "repeated_2grams_reference": repeated_ngram_rate(references)}
    with torch.no_grad():
        for search, num_beams in (("greedy", 1), ("beam4", 4)):
            output = model.generate(
                input_ids, attention_mask=attention_mask, max_new_tokens=sizes["max_new_tokens"], num_beams=num_beams
            )
            hypotheses = [until_eos(sequence) for sequence in output.tolist()]
            as_text = [" ".join(map(str, tokens)) for tokens in hypotheses]
            result[f"bleu_{search}"] = sacrebleu.corpus_bleu(
                as_text, [[" ".join(map(str, r)) for r in references]]
            ).score
            result[f"repeated_2grams_{search}"] = repeated_ngram_rate(hypotheses)
            result[f"length_ratio_{search}"] = sum(map(len, hypotheses)) / sum(map(len, references))
    return result, model


def option_costs(models: dict[str, SimpleS2SForConditionalGeneration], args, sizes: dict) -> dict:
    """Time of one training step and of one greedy decoding of the test set, each option / the baseline."""
    vocab_size, device = sizes["vocab_size"], args.device
    input_ids, attention_mask, labels, _ = reversal_batch(
        sizes["batch_size"], 4, 16, torch.Generator().manual_seed(3), vocab_size, device
    )
    test_ids, test_mask, _, _ = reversal_batch(
        sizes["test_size"], 14, 24, torch.Generator().manual_seed(2), vocab_size, device
    )

    def train_step(model):
        model.train()
        model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
        model.zero_grad()

    @torch.no_grad()
    def decode(model):
        model.eval().generate(test_ids, attention_mask=test_mask, max_new_tokens=sizes["max_new_tokens"])

    runs = {}
    for name, model in models.items():
        runs[f"{name}/train_step"] = lambda model=model: train_step(model)
        runs[f"{name}/decode"] = lambda model=model: decode(model)
    timings = harness.interleaved_times(runs, device, args.repeats)
    baseline = next(iter(models))
    return {
        "ratios": {
            f"{name}/{part}": harness.ratios(timings, f"{name}/{part}", f"{baseline}/{part}")
            for name in list(models)[1:]
            for part in ("train_step", "decode")
        },
        "rounds": harness.rounds(timings),
    }


def synthetic_task(args) -> tuple[dict, list[dict], dict]:
    sizes = QUICK_REVERSAL if args.quick else REVERSAL
    results, models = {name: [] for name in OPTIONS}, {}
    for seed in args.seeds:
        for name, overrides in OPTIONS.items():
            result, models[name] = train_and_score(overrides, seed, args, sizes)
            results[name].append(result)
    costs = option_costs(models, args, sizes)
    targets = [
        harness.target(f"reversal: {label}", name, statistics.fmean(run[key] for run in runs))
        for name, runs in results.items()
        for key, label in REVERSAL_FIGURES.items()
    ]
    for case, cost in costs["ratios"].items():
        option, part = case.split("/")
        targets.append(harness.target(f"reversal: {part.replace('_', ' ')} / baseline", option, cost))
    setting = dict(
        sizes,
        steps=args.steps,
        seeds=args.seeds,
        attention_type="bahdanau",
        train_lengths="4-16",
        test_lengths="14-24",
    )
    return {"runs": results, "costs": costs}, targets, setting


OPTION_FIELDS = ("attention_type", "coverage", "coverage_loss_weight", "scheduled_sampling")


def multi30k_folders(args) -> tuple[dict, list[dict], dict]:
    test = load_parallel_corpus(args.data_dir, "de", "en")["test"]
    pairs = test["translation"][: 16 if args.quick else None]
    sources, references = [p["de"] for p in pairs], [p["en"] for p in pairs]
    longest = sorted(range(len(sources)), key=lambda i: len(sources[i].split()), reverse=True)[:100]

    def scores(hypotheses: list[str]) -> dict[str, float]:
        words = [text.lower().split() for text in hypotheses]
        return {
            "bleu_lowercase": sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score,
            "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "repeated_2grams": repeated_ngram_rate(words),
            "repeated_2grams_longest": repeated_ngram_rate([words[i] for i in longest]),
        }

    results = {"references": {"repeated_2grams": repeated_ngram_rate([r.lower().split() for r in references])}}
    targets = [
        harness.target("Multi30k: repeated word 2-grams", "references", results["references"]["repeated_2grams"])
    ]
    for folder in args.folders:
        model, tokenizer = load_translator(folder, args.device)  # "a,b,c": the folders as one ensemble
        name = "+".join(Path(member).name for member in folder.split(","))
        options = [
            {option: getattr(member.config, option) for option in OPTION_FIELDS}
            for member in getattr(model, "members", [model])  # an ensemble's options are its members'
        ]
        results[name] = {
            "options": options if len(options) > 1 else options[0],
            "num_beams": model.generation_config.num_beams,
            "greedy": scores(translate(sources, model, tokenizer, num_beams=1)),
            "beam": scores(translate(sources, model, tokenizer)),  # the folder's generation config (the beam that won)
        }
        targets += [
            harness.target(f"Multi30k test: {label}", name, results[name][search][key])
            for (search, key), label in FOLDER_FIGURES.items()
        ]
    return results, targets, {"data_dir": str(args.data_dir), "test_sentences": len(sources), "folders": args.folders}


def main(argv: list[str] | None = None) -> dict:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--steps", type=int, default=None, help="training steps per option (default 800, --quick 20)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 (--quick: 0)")
    parser.add_argument(
        "--folders", nargs="+", default=None, help="trained Multi30k folders instead of the synthetic task"
    )
    parser.add_argument("--data_dir", default=str(MULTI30K_DIR))
    args = harness.parse_args(parser, argv, repeats=5)
    args.steps = args.steps or (20 if args.quick else 800)
    args.seeds = args.seeds or ([0] if args.quick else [0, 1])
    results, targets, setting = multi30k_folders(args) if args.folders else synthetic_task(args)
    return harness.finish(
        "bench_quality_multi30k" if args.folders else "bench_quality", args, results, targets, setting
    )


if __name__ == "__main__":
    main()
