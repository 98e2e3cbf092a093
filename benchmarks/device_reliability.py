"""Precision and determinism on one device (CUDA when present): what the CPU tests check, for a GPU run.

For fp32, bf16 and fp16: output dtypes, NaN/inf, the largest logit error against fp32 and how many greedy outputs
equal fp32's. Then two identical short training runs, to say whether their loss curves are bit-identical. Prints a
table and writes JSON. CUDA's deterministic mode has to be chosen before CUDA starts, hence the flag:

    PYTHONPATH=. python benchmarks/device_reliability.py                   # default kernels
    PYTHONPATH=. python benchmarks/device_reliability.py --deterministic   # torch.use_deterministic_algorithms
"""

import argparse
import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--deterministic", action="store_true", help="transformers' enable_full_determinism")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "results" / "device_reliability.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_arguments(argv)
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # before CUDA starts
    import torch
    from transformers.trainer_utils import enable_full_determinism, set_seed

    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from conftest import padded_batch, tiny_model
    from reversal_task import reversal_examples

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.deterministic:
        enable_full_determinism(0)
    sources, attention_mask = padded_batch([e["input_ids"] for e in reversal_examples(64, seed=5)])
    sources, attention_mask = sources.to(device), attention_mask.to(device)

    rows = []
    reference_model = tiny_model(seed=3, hidden_size=64, embedding_size=32).to(device)
    reference = reference_model.generate(sources, attention_mask=attention_mask, max_new_tokens=10, do_sample=False)
    with torch.no_grad():
        reference_logits = reference_model(sources, attention_mask, reference[:, :-1]).logits
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        model = tiny_model(seed=3, hidden_size=64, embedding_size=32).to(device=device, dtype=dtype)
        with torch.no_grad():
            outputs = model(sources, attention_mask, reference[:, :-1])
        generated = model.generate(sources, attention_mask=attention_mask, max_new_tokens=10, do_sample=False)
        width = max(generated.shape[1], reference.shape[1])  # rows end with pads after eos; pad both alike
        padded = [torch.nn.functional.pad(ids, (0, width - ids.shape[1])) for ids in (generated, reference)]
        rows.append(
            dict(
                dtype=str(dtype).removeprefix("torch."),
                logits_dtype=str(outputs.logits.dtype).removeprefix("torch."),
                encoder_dtype=str(outputs.encoder_last_hidden_state.dtype).removeprefix("torch."),
                finite=bool(torch.isfinite(outputs.logits).all()),
                max_logit_error=(outputs.logits.float() - reference_logits).abs().max().item(),
                greedy_rows_equal_fp32=(padded[0] == padded[1]).all(dim=-1).float().mean().item(),
            )
        )

    def loss_curve() -> list[float]:
        set_seed(0)
        model = tiny_model(seed=0, dropout=0.1, hidden_size=64, embedding_size=32).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        examples = reversal_examples(args.steps * 16, seed=1)
        losses = []
        for step in range(args.steps):
            chunk = examples[step * 16 : (step + 1) * 16]
            input_ids, mask = padded_batch([e["input_ids"] for e in chunk])
            labels, label_mask = padded_batch([e["labels"] for e in chunk])
            labels = labels.masked_fill(label_mask == 0, -100)
            loss = model(input_ids.to(device), mask.to(device), labels=labels.to(device)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        return losses

    first, second = loss_curve(), loss_curve()
    result = dict(
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch=torch.__version__,
        cudnn=torch.backends.cudnn.version() if device.type == "cuda" else None,
        deterministic=args.deterministic,
        precision=rows,
        training_runs_bit_identical=first == second,
        largest_loss_difference=max(abs(a - b) for a, b in zip(first, second, strict=True)),
    )
    print(f"{'dtype':>9} {'logits':>9} {'encoder':>9} {'finite':>7} {'max |Δlogit|':>13} {'greedy = fp32':>14}")
    for row in rows:
        print(
            f"{row['dtype']:>9} {row['logits_dtype']:>9} {row['encoder_dtype']:>9} {row['finite']!s:>7} "
            f"{row['max_logit_error']:>13.2e} {row['greedy_rows_equal_fp32']:>14.2f}"
        )
    print(
        f"{result['device_name']}, deterministic={args.deterministic}: two training runs bit-identical: "
        f"{result['training_runs_bit_identical']} (largest loss difference {result['largest_loss_difference']:.2e})"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
