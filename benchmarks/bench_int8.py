"""int8 decoding on the CPU (`hf_simple_s2s.inference.quantize`): speed against float32 and, on a trained model,
agreement.

- At the reference setting (emb 256, hidden 512, bi-GRU encoder, vocab 8000; batch 32,
  source length 20, 30 new tokens with EOS banned), for each attention type, in one round-robin: greedy and beam-5
  `generate()` of the float32 model against its `quantize_int8` copy (target: int8 >= 1.3x faster); with `--onnx`
  also the ONNX export under the same `generate()` call (`OnnxSimpleS2S`, reported).
- With `--folder DIR` (a trained Multi30k folder): Multi30k test 2016 translated by both, greedy and beam 5, with
  `translate()` as the CLI does (real lengths, stopping at EOS): BLEU of each (target: int8 within 0.3 of float32),
  the share of identical translations, and the speed-up, both models taking turns batch by batch.

    python -m benchmarks.bench_int8 [--quick] [--threads 2] [--repeats 5] [--onnx] [--folder DIR]
"""

import sacrebleu
import torch

from benchmarks import harness
from benchmarks.bench_generate import NUM_BEAMS, generate_call, onnxruntime_twin
from hf_simple_s2s.data import MULTI30K_DIR, load_parallel_corpus
from hf_simple_s2s.inference.quantize import quantize_int8
from hf_simple_s2s.inference.translate import load_translator, translate

BLEU_TOLERANCE = 0.3


def bench_attention_type(args, attention_type: str) -> dict:
    setting, new_tokens = args.setting, args.setting.new_tokens
    model = harness.build_model(setting, attention_type, "cpu").eval()
    int8_model = quantize_int8(model)
    input_ids = harness.random_ids(setting.batch_size, setting.source_length, setting.vocab_size, "cpu")
    attention_mask = torch.ones_like(input_ids)
    models = {"fp32": model, "int8": int8_model}
    if args.onnx:
        models["onnxruntime"] = onnxruntime_twin(model, args.threads)
    runs = {
        f"{name}_{search}": lambda m=m, beams=beams: generate_call(m, input_ids, attention_mask, new_tokens, beams)
        for name, m in models.items()
        for search, beams in (("greedy", 1), ("beam5", NUM_BEAMS))
    }
    timings = harness.interleaved_times(runs, "cpu", args.repeats)
    ratios = {}
    for search in ("greedy", "beam5"):
        ratios[f"int8_speedup_{search}"] = harness.ratios(timings, f"fp32_{search}", f"int8_{search}")
        if args.onnx:
            ratios[f"onnxruntime_vs_fp32_{search}"] = harness.ratios(
                timings, f"onnxruntime_{search}", f"fp32_{search}"
            )
            ratios[f"onnxruntime_vs_int8_{search}"] = harness.ratios(
                timings, f"onnxruntime_{search}", f"int8_{search}"
            )
    seconds = harness.medians(timings)
    return {
        "sentences_per_second": {name: setting.batch_size / value for name, value in seconds.items()},
        "ratios": ratios,
        "rounds": harness.rounds(timings),
    }


def bench_folder(args) -> dict:
    """BLEU of float32 and int8 on Multi30k test 2016, greedy and beam 5; both translate each batch in turn (as
    `translate()` batches: sorted by length, 128 a batch), timed by the wall and CPU clocks."""
    test = load_parallel_corpus(MULTI30K_DIR, "de", "en")["test"]["translation"][: 32 if args.quick else None]
    sources, references = [pair["de"] for pair in test], [pair["en"] for pair in test]
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    batches = [order[start : start + 128] for start in range(0, len(order), 128)]
    model, tokenizer = load_translator(args.folder)
    models = {"fp32": model, "int8": quantize_int8(model)}
    result = {"folder": str(args.folder), "test_sentences": len(sources), "parameters": model.num_parameters()}
    for search, num_beams in (("greedy", 1), ("beam5", NUM_BEAMS)):
        hypotheses = {name: [""] * len(sources) for name in models}
        timings = harness.Timings(models)
        for batch in batches:
            for name, m in models.items():
                with harness.timed(timings, name, "cpu"):
                    texts = translate([sources[i] for i in batch], m, tokenizer, batch_size=128, num_beams=num_beams)
                for i, text in zip(batch, texts, strict=True):
                    hypotheses[name][i] = text
        for name in models:
            result[f"{name}_{search}"] = {
                "bleu": sacrebleu.corpus_bleu(hypotheses[name], [references]).score,
                "bleu_lowercase": sacrebleu.corpus_bleu(hypotheses[name], [references], lowercase=True).score,
                "seconds": sum(timings[name]),
                "cpu_seconds": sum(timings.cpu[name]),
                "sentences_per_second": len(sources) / sum(timings[name]),
            }
        same = sum(a == b for a, b in zip(hypotheses["fp32"], hypotheses["int8"], strict=True)) / len(sources)
        result[f"identical_translations_{search}"] = same
        result[f"bleu_int8_minus_fp32_{search}"] = result[f"int8_{search}"]["bleu"] - result[f"fp32_{search}"]["bleu"]
        result[f"int8_speedup_{search}"] = harness.ratios(timings, "fp32", "int8")  # batch by batch
        result[f"rounds_{search}"] = harness.rounds(timings)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--onnx", action="store_true", help="also time the ONNX export in onnxruntime")
    parser.add_argument("--folder", default=None, help="a trained Multi30k folder: BLEU of float32 and int8")
    parser.add_argument(
        "--attention_types", nargs="+", choices=harness.ATTENTION_TYPES, default=harness.ATTENTION_TYPES
    )
    args = harness.parse_args(parser, argv, repeats=5)
    if args.device != "cpu":
        parser.error("int8 decoding runs on the CPU: use --device cpu")
    results = {"attention_types": {name: bench_attention_type(args, name) for name in args.attention_types}}
    targets = []
    for attention_type, result in results["attention_types"].items():
        for name, measured in result["ratios"].items():
            needed = ">= 1.3" if name.startswith("int8_speedup") else None
            targets.append(harness.target(name.replace("_", " "), attention_type, measured, needed))
    if args.folder:
        folder = results["folder"] = bench_folder(args)
        for search in ("greedy", "beam5"):
            difference = folder[f"bleu_int8_minus_fp32_{search}"]
            targets += [
                harness.target(
                    f"Multi30k test BLEU, int8 - fp32, {search}", "folder", difference, f">= -{BLEU_TOLERANCE}"
                ),
                harness.target(f"Multi30k test, int8 speed-up, {search}", "folder", folder[f"int8_speedup_{search}"]),
                harness.target(
                    f"Multi30k test, identical translations, {search}",
                    "folder",
                    folder[f"identical_translations_{search}"],
                ),
            ]
    return harness.finish("bench_int8", args, results, targets)


if __name__ == "__main__":
    main()
