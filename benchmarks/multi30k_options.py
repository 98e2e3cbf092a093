"""Coverage and scheduled sampling on real data: trained Multi30k model folders compared on the test set.

Train one folder per option with the main job (same preset, same seed), then compare them here:

    python examples/train_multi30k.py --preset tiny --output_dir outputs/options/baseline
    python examples/train_multi30k.py --preset tiny --output_dir outputs/options/coverage --coverage=true
    ...
    PYTHONPATH=. python benchmarks/multi30k_options.py outputs/options/* --out benchmarks/results/multi30k_options.json

For each folder: lower-cased and cased BLEU of greedy and beam search (the folder's saved beam settings) on test
2016, and the share of repeated word 2-grams in the outputs, on all sentences and on the 100 longest sources (where
an attention model repeats or drops words most). The references' own rate is printed as the floor.
"""

import argparse
import json
import platform
import sys
from pathlib import Path

import sacrebleu
import torch

from hf_simple_s2s.data import MULTI30K_DIR, load_parallel_corpus
from hf_simple_s2s.inference.translate import load_translator, translate

sys.path.insert(0, str(Path(__file__).parent))
from beyond_effects import repeated_ngram_rate  # noqa: E402


def word_repeat_rate(texts: list[str]) -> float:
    return repeated_ngram_rate([text.lower().split() for text in texts], n=2)


def scores(hypotheses: list[str], references: list[str], longest: list[int]) -> dict[str, float]:
    return {
        "bleu_lowercase": sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score,
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
        "repeated_2grams": word_repeat_rate(hypotheses),
        "repeated_2grams_longest": word_repeat_rate([hypotheses[i] for i in longest]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", help="trained model folders (the main job's output folders)")
    parser.add_argument("--data_dir", default=str(MULTI30K_DIR))
    parser.add_argument("--max_test_samples", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/multi30k_options.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    test = load_parallel_corpus(args.data_dir, "de", "en")["test"]
    pairs = test["translation"][: args.max_test_samples]
    sources, references = [p["de"] for p in pairs], [p["en"] for p in pairs]
    longest = sorted(range(len(sources)), key=lambda i: len(sources[i].split()), reverse=True)[:100]

    results = {"references": {"repeated_2grams": word_repeat_rate(references)}, "models": {}}
    for folder in args.folders:
        model, tokenizer = load_translator(folder)
        run = json.loads((Path(folder) / "run_args.json").read_text())["model"]
        options = {k: run.get(k) for k in ("coverage", "attention_type")}
        options.update({k: model.config.to_dict().get(k) for k in ("coverage_loss_weight", "scheduled_sampling")})
        greedy = translate(sources, model, tokenizer, num_beams=1)
        beam = translate(sources, model, tokenizer)  # the folder's generation_config (beam settings that won)
        results["models"][Path(folder).name] = {
            "options": options,
            "num_beams": model.generation_config.num_beams,
            "greedy": scores(greedy, references, longest),
            "beam": scores(beam, references, longest),
        }
        print(f"done: {folder}", file=sys.stderr)

    results["machine"] = {"platform": platform.platform(), "torch": torch.__version__, "threads": 1}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")

    print("| folder | BLEU lc greedy | BLEU lc beam | BLEU cased beam | repeated 2-grams beam (100 longest) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results["models"].items():
        b, g = r["beam"], r["greedy"]
        print(
            f"| {name} | {g['bleu_lowercase']:.2f} | {b['bleu_lowercase']:.2f} | {b['bleu']:.2f} | "
            f"{100 * b['repeated_2grams']:.2f}% ({100 * b['repeated_2grams_longest']:.2f}%) |"
        )
    print(f"| references | | | | {100 * results['references']['repeated_2grams']:.2f}% |")


if __name__ == "__main__":
    main()
