"""Decoding speed: `generate()` against the exported graphs in onnxruntime (greedy and beam search) and against the
same decoder step in eager PyTorch and under `torch.compile` (greedy). Checks every path returns `generate()`'s tokens.

    PYTHONPATH=. python benchmarks/beyond_speed.py --out benchmarks/results/beyond_speed.json

Random weights at the classic Multi30k size (emb 256, bi-GRU 512, decoder 512, vocab 8000), batch 32, 30 source
tokens, 30 new tokens (random weights rarely emit eos, so every path runs all steps). Times are medians of
`--repeats` runs on `--threads` threads; quote them as ratios to `generate()` measured in the same run.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from hf_simple_s2s.export.onnx import (
    DecoderStep,
    OnnxTranslator,
    PaddedEncoder,
    beam_decode,
    export_onnx,
    greedy_decode,
)


def median_seconds(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def torch_functions(encoder: torch.nn.Module, step: torch.nn.Module):
    """`greedy_decode`'s two functions over PyTorch modules (numpy in and out, as onnxruntime)."""

    @torch.no_grad()
    def encode(input_ids, attention_mask):
        return [t.numpy() for t in encoder(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))]

    @torch.no_grad()
    def decode_step(feeds):
        return [t.numpy() for t in step(**{name: torch.from_numpy(value) for name, value in feeds.items()})]

    return encode, decode_step


def bench(attention_type: str, coverage: bool, args) -> dict:
    torch._dynamo.reset()  # compiled code is guarded on the module: start each model from a clean slate
    torch.manual_seed(0)
    config = SimpleS2SConfig(vocab_size=8000, attention_type=attention_type, coverage=coverage)
    model = SimpleS2SForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(4, 8000, (args.batch_size, args.src_len), generator=generator)
    input_ids[:, -1] = config.eos_token_id
    attention_mask = torch.ones_like(input_ids)
    ids, mask = input_ids.numpy(), attention_mask.numpy()
    steps = args.new_tokens

    def hf_generate():
        with torch.no_grad():
            return model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=steps).numpy()

    row = {"attention_type": attention_type, "coverage": coverage}
    row["generate_s"], reference = median_seconds(hf_generate, args.repeats)

    def hf_beam():
        with torch.no_grad():
            return model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=steps, num_beams=beams)

    beams = args.num_beams
    row["generate_beam_s"], beam_reference = median_seconds(hf_beam, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        translator = OnnxTranslator(export_onnx(model, folder), intra_op_num_threads=args.threads)
        row["onnxruntime_s"], got = median_seconds(lambda: translator.generate(ids, mask, steps), args.repeats)
        row["onnxruntime_same_tokens"] = got.tolist() == reference.tolist()
        row["onnxruntime_beam_s"], got = median_seconds(
            lambda: translator.generate(ids, mask, steps, num_beams=beams), args.repeats
        )
        row["onnxruntime_beam_same_tokens"] = got.tolist() == beam_reference.tolist()

    encoder, step = PaddedEncoder(model).eval(), DecoderStep(model).eval()
    eager = torch_functions(encoder, step)
    row["eager_step_s"], got = median_seconds(lambda: greedy_decode(*eager, config, ids, mask, steps), args.repeats)
    row["eager_step_same_tokens"] = got.tolist() == reference.tolist()
    # The same beam search over PyTorch's step: tells float differences (onnxruntime) from search differences.
    got = beam_decode(*eager, config, ids, mask, steps, args.num_beams)
    row["eager_step_beam_same_tokens"] = got.tolist() == beam_reference.tolist()

    if args.compile:
        compiled = torch_functions(encoder, torch.compile(step, dynamic=False))
        start = time.perf_counter()
        greedy_decode(*compiled, config, ids, mask, steps)  # compiles
        row["compile_first_call_s"] = time.perf_counter() - start
        row["compiled_step_s"], got = median_seconds(
            lambda: greedy_decode(*compiled, config, ids, mask, steps), args.repeats
        )
        row["compiled_step_same_tokens"] = got.tolist() == reference.tolist()
    row["tokens_generated"] = int(np.prod(reference[:, 1:].shape))
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--src_len", type=int, default=30)
    parser.add_argument("--new_tokens", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num_beams", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no_compile", dest="compile", action="store_false")
    parser.add_argument("--out", default="benchmarks/results/beyond_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench(a, c, args) for a, c in (("bahdanau", False), ("bahdanau", True), ("luong_general", False))]
    print(
        "| attention | coverage | generate() | onnxruntime | eager step loop | torch.compile step loop "
        f"| beam {args.num_beams}: generate() | beam {args.num_beams}: onnxruntime | same tokens |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        base = r["generate_s"]
        compiled = f"{r['compiled_step_s'] / base:.2f}x" if "compiled_step_s" in r else "not run"
        same = ", ".join(k.removesuffix("_same_tokens") for k, v in r.items() if k.endswith("same_tokens") and not v)
        print(
            f"| {r['attention_type']} | {r['coverage']} | 1.00x ({base:.2f} s) | {r['onnxruntime_s'] / base:.2f}x | "
            f"{r['eager_step_s'] / base:.2f}x | {compiled} | 1.00x ({r['generate_beam_s']:.2f} s) | "
            f"{r['onnxruntime_beam_s'] / r['generate_beam_s']:.2f}x | {'all' if not same else 'all but ' + same} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
