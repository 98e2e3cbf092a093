"""Device checks: precision and determinism on one device (CUDA when present), what the CPU tests check, for a GPU.

For fp32, bf16 and fp16 on a small model: the dtypes of logits and encoder outputs, NaN/inf, the largest logit error
against fp32 and the share of greedy outputs equal to fp32's. Then `--repeats` identical short training runs: are
their loss curves bit-identical? CUDA's deterministic mode has to be chosen before CUDA starts, hence the flag.

    python -m benchmarks.bench_device [--quick] [--device cpu|cuda] [--repeats 2] [--steps 30] [--deterministic]

Also a pytest plugin, with which `benchmarks/gpu_check.sh` runs the test suite with CUDA as torch's default device,
so that every model and tensor the unchanged tests create (without naming a device) lives on the GPU:

    pytest -p benchmarks.bench_device tests
"""

import os
from dataclasses import asdict

import torch
from transformers.trainer_utils import enable_full_determinism, set_seed

from benchmarks import harness

DEVICE_SETTING = harness.Setting(
    vocab_size=40, embedding_size=32, hidden_size=64, batch_size=64, source_length=9, target_length=9, new_tokens=10
)
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# torch 2.11's TorchScript ONNX exporter crashed the process (segmentation fault) with CUDA as the default device.
SKIPPED_FOLDERS = {"export": "ONNX export is a CPU path; its exporter segfaulted with CUDA as the default device"}


def padded_sources(setting: harness.Setting, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sources of 3 to `source_length` tokens ending in EOS, right-padded."""
    input_ids = harness.random_ids(setting.batch_size, setting.source_length, setting.vocab_size, "cpu", seed)
    lengths = torch.randint(
        3, setting.source_length + 1, (setting.batch_size, 1), generator=torch.Generator().manual_seed(seed)
    )
    positions = torch.arange(setting.source_length)
    input_ids[positions == lengths - 1] = harness.EOS_ID
    attention_mask = (positions < lengths).long()
    return input_ids.masked_fill(attention_mask == 0, harness.PAD_ID).to(device), attention_mask.to(device)


def precision(setting: harness.Setting, device: str) -> list[dict]:
    sources, attention_mask = padded_sources(setting, device)
    kwargs = dict(attention_mask=attention_mask, max_new_tokens=setting.new_tokens, do_sample=False)
    reference_model = harness.build_model(setting, "bahdanau", device, seed=3, dropout=0.0).eval()
    reference = reference_model.generate(sources, **kwargs)
    with torch.no_grad():
        reference_logits = reference_model(sources, attention_mask, reference[:, :-1]).logits
    rows = []
    for dtype in DTYPES:
        model = harness.build_model(setting, "bahdanau", device, seed=3, dropout=0.0).to(dtype).eval()
        with torch.no_grad():
            outputs = model(sources, attention_mask, reference[:, :-1])
        generated = model.generate(sources, **kwargs)
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
    return rows


def loss_curve(setting: harness.Setting, device: str, steps: int) -> list[float]:
    set_seed(0)
    model = harness.build_model(setting, "bahdanau", device, seed=0, dropout=0.1).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for step in range(steps):
        input_ids, attention_mask = padded_sources(setting, device, seed=step)
        labels = harness.random_ids(setting.batch_size, setting.target_length, setting.vocab_size, device, 1000 + step)
        loss = model(input_ids, attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def main(argv: list[str] | None = None) -> dict:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--deterministic", action="store_true", help="transformers' enable_full_determinism")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 30, --quick 5)")
    args = harness.parse_args(parser, argv, repeats=2)
    args.steps = args.steps or (5 if args.quick else 30)
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # before CUDA starts
        enable_full_determinism(0)
    rows = precision(DEVICE_SETTING, args.device)
    curves = [loss_curve(DEVICE_SETTING, args.device, args.steps) for _ in range(max(2, args.repeats))]
    largest_difference = max(abs(a - b) for curve in curves[1:] for a, b in zip(curves[0], curve, strict=True))
    results = {
        "cudnn": torch.backends.cudnn.version() if args.device.startswith("cuda") else None,
        "deterministic": args.deterministic,
        "precision": rows,
        "loss_curves": curves,
        "largest_loss_difference": largest_difference,
    }
    targets = [harness.target("logits finite", row["dtype"], row["finite"], "== true") for row in rows]
    targets += [
        harness.target("largest logit error against fp32", row["dtype"], row["max_logit_error"]) for row in rows
    ]
    targets += [
        harness.target("greedy rows equal to fp32's", row["dtype"], row["greedy_rows_equal_fp32"]) for row in rows
    ]
    case = f"{len(curves)} runs of {args.steps} steps" + (", deterministic" if args.deterministic else "")
    targets.append(harness.target("training runs bit-identical", case, largest_difference == 0))
    setting = dict(asdict(DEVICE_SETTING), attention_type="bahdanau", steps=args.steps)
    return harness.finish("bench_device", args, results, targets, setting)


# The pytest plugin (`pytest -p benchmarks.bench_device`): CUDA as the default device of the whole test run.
def pytest_configure(config):
    if not torch.cuda.is_available():
        raise RuntimeError("benchmarks.bench_device as a pytest plugin: torch does not see a CUDA device")
    torch.set_default_device("cuda")
    # Collators then make their batches on the GPU already, and CUDA tensors cannot be pinned (the Trainer asks for
    # pinned memory whenever CUDA is there).
    data_loader_init = torch.utils.data.DataLoader.__init__

    def init_without_pinning(self, *args, **kwargs):
        kwargs["pin_memory"] = False
        data_loader_init(self, *args, **kwargs)

    torch.utils.data.DataLoader.__init__ = init_without_pinning


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        reason = SKIPPED_FOLDERS.get(item.path.parent.name)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


if __name__ == "__main__":
    main()
