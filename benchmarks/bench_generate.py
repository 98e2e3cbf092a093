"""Decoding speed: `generate()` against the hand-written loops over the same modules, and against the classic model.

At the reference setting (emb 256, hidden 512, bi-GRU encoder, vocab 8000, batch 32, source length 20, 30 new tokens
with EOS banned so that every run does the same work), for each attention type, in one round-robin:
- greedy and beam-5 `generate()` against `baselines.hand_decoding` (targets <= 1.10 and <= 1.20); the tokens must be
  the same, which is what makes the ratio fair (asserted before timing);
- greedy with 60 against 30 new tokens (target <= 2.1: the cost per step is flat);
- reported: greedy against the hand loop with the per-step finished check, and the cost of `coverage=True`;
- with `--rev REV`: the same model built from the model files of a git revision, same weights (before/after a
  change to the model code; the two must choose the same tokens);
- with `--onnx` (CPU): the model exported to ONNX, run by onnxruntime under the same `generate()` call
  (`OnnxSimpleS2S`); the share of rows with PyTorch's tokens is reported (random weights make near-ties that float
  differences can flip in beam search; EOS is banned, so the work is the same either way).
Then sentences per second of batched greedy `generate()` against the classic model translating one sentence at a
time (reported).

    python -m benchmarks.bench_generate [--quick] [--threads 2] [--device cpu|cuda] [--repeats 7] [--rev main] [--onnx]
"""

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from benchmarks import harness
from benchmarks.baselines.classic_seq2seq import ClassicSeq2Seq, classic_translate
from benchmarks.baselines.hand_decoding import hand_beam_search, hand_greedy

NUM_BEAMS = 5
REPO_ROOT = Path(__file__).resolve().parent.parent


class BanToken(LogitsProcessor):
    """Scores of one token set to -inf, in place: what the hand loops do to EOS. (`suppress_tokens=[eos]` would do
    the same, but rebuilds a vocabulary-sized mask with `isin` at every step.)"""

    def __init__(self, token_id: int):
        self.token_id = token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores[:, self.token_id] = -float("inf")
        return scores


def generate_call(model, input_ids, attention_mask, new_tokens: int, num_beams: int, **kwargs):
    return model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=new_tokens,
        num_beams=num_beams,
        do_sample=False,
        logits_processor=LogitsProcessorList([BanToken(model.config.eos_token_id)]),
        **kwargs,
    )


def check_same_tokens(model, input_ids, attention_mask, new_tokens: int) -> dict:
    """generate() must choose what the hand loops choose; beam search may differ only between exactly tied beams."""
    greedy = generate_call(model, input_ids, attention_mask, new_tokens, num_beams=1)[:, 1:]
    hand = hand_greedy(model, input_ids, attention_mask, new_tokens)
    if not torch.equal(greedy, hand):
        raise AssertionError("greedy generate() and the hand loop chose different tokens: the comparison is unfair")
    if not torch.equal(hand, hand_greedy(model, input_ids, attention_mask, new_tokens, stop_check=True)):
        raise AssertionError("the hand loop's stop check changed its tokens")
    beam = generate_call(
        model, input_ids, attention_mask, new_tokens, NUM_BEAMS, output_scores=True, return_dict_in_generate=True
    )
    hand_tokens, hand_scores = hand_beam_search(model, input_ids, attention_mask, new_tokens, NUM_BEAMS)
    differ = (beam.sequences[:, 1:] != hand_tokens).any(dim=1)
    # generate() reports the summed log-probability divided by the length (length_penalty=1).
    tied = torch.isclose(beam.sequences_scores * new_tokens, hand_scores, rtol=1e-5, atol=1e-4)
    if (differ & ~tied).any():
        raise AssertionError("beam-5 generate() and the hand beam search found hypotheses of different scores")
    return {
        "greedy_identical": True,
        "beam5_identical_rows": int((~differ).sum()),
        "beam5_tied_rows": int(differ.sum()),
    }


def model_class_at_revision(revision: str) -> type:
    """Imports the model files of `revision` (the `*_simple_s2s.py` beside its `modeling_simple_s2s.py`) as a
    separate package, without registering Auto classes."""

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout

    files = git("ls-tree", "-r", "--name-only", revision, "hf_simple_s2s").split()
    folder = next(Path(name).parent for name in files if name.endswith("/modeling_simple_s2s.py"))
    package_dir = Path(tempfile.mkdtemp()) / "simple_s2s_at_revision"
    package_dir.mkdir()
    for name in files:
        if Path(name).parent == folder and name.endswith("_simple_s2s.py"):  # the files that travel with the model
            (package_dir / Path(name).name).write_text(git("show", f"{revision}:{name}"))
    (package_dir / "__init__.py").write_text("")
    sys.path.insert(0, str(package_dir.parent))
    return importlib.import_module("simple_s2s_at_revision.modeling_simple_s2s").SimpleS2SForConditionalGeneration


def onnxruntime_twin(model, threads: int):
    """The model exported to ONNX and loaded as `OnnxSimpleS2S`: the same weights under the same `generate()`."""
    import onnxruntime  # the `export` extra

    from hf_simple_s2s.export.onnx import OnnxSimpleS2S, export_onnx

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # Its threads would otherwise spin after each call, taking the cores from the PyTorch runs of the same round.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return OnnxSimpleS2S.from_pretrained(export_onnx(model, tempfile.mkdtemp()), session_options=options)


def bench_attention_type(args, attention_type: str, revision_class: type | None) -> dict:
    setting, device, new_tokens = args.setting, args.device, args.setting.new_tokens
    model = harness.build_model(setting, attention_type, device).eval()
    coverage_model = harness.build_model(setting, attention_type, device, coverage=True).eval()
    input_ids = harness.random_ids(setting.batch_size, setting.source_length, setting.vocab_size, device)
    attention_mask = torch.ones_like(input_ids)
    agreement = check_same_tokens(model, input_ids, attention_mask, new_tokens)

    def decode(model, num_beams: int, tokens: int = new_tokens):
        return lambda: generate_call(model, input_ids, attention_mask, tokens, num_beams)

    runs = {
        "generate_greedy": decode(model, 1),
        "hand_greedy": lambda: hand_greedy(model, input_ids, attention_mask, new_tokens),
        "hand_greedy_stop_check": lambda: hand_greedy(model, input_ids, attention_mask, new_tokens, stop_check=True),
        "generate_beam5": decode(model, NUM_BEAMS),
        "hand_beam5": lambda: hand_beam_search(model, input_ids, attention_mask, new_tokens, NUM_BEAMS),
        "generate_greedy_2x_tokens": decode(model, 1, 2 * new_tokens),
        "coverage_greedy": decode(coverage_model, 1),
        "coverage_beam5": decode(coverage_model, NUM_BEAMS),
    }
    if revision_class is not None:
        revision_model = harness.build_model(setting, attention_type, device, model_class=revision_class).eval()
        for num_beams, name in ((1, "greedy"), (NUM_BEAMS, "beam5")):
            if not torch.equal(decode(revision_model, num_beams)(), decode(model, num_beams)()):
                raise AssertionError(
                    f"{attention_type} {name}: the revision and the working tree chose different tokens"
                )
            runs[f"revision_{name}"] = decode(revision_model, num_beams)
    if args.onnx:
        onnx_model = onnxruntime_twin(model, args.threads)
        for num_beams, name in ((1, "greedy"), (NUM_BEAMS, "beam5")):
            same_rows = (decode(onnx_model, num_beams)() == decode(model, num_beams)()).all(dim=1)
            agreement[f"onnxruntime_{name}_rows_equal"] = same_rows.float().mean().item()
            runs[f"onnxruntime_{name}"] = decode(onnx_model, num_beams)
    timings = harness.interleaved_times(runs, device, args.repeats)
    seconds = harness.medians(timings)
    comparisons = {
        "greedy_vs_hand": ("generate_greedy", "hand_greedy"),
        "beam5_vs_hand": ("generate_beam5", "hand_beam5"),
        "steps_60_vs_30": ("generate_greedy_2x_tokens", "generate_greedy"),
        # the floor of a loop that can stop at EOS (one device read-back per step)
        "greedy_vs_hand_with_stop_check": ("generate_greedy", "hand_greedy_stop_check"),
        "coverage_vs_none_greedy": ("coverage_greedy", "generate_greedy"),
        "coverage_vs_none_beam5": ("coverage_beam5", "generate_beam5"),
    }
    if revision_class is not None:
        comparisons.update(
            working_tree_vs_revision_greedy=("generate_greedy", "revision_greedy"),
            working_tree_vs_revision_beam5=("generate_beam5", "revision_beam5"),
        )
    if args.onnx:
        comparisons.update(
            onnxruntime_vs_torch_greedy=("onnxruntime_greedy", "generate_greedy"),
            onnxruntime_vs_torch_beam5=("onnxruntime_beam5", "generate_beam5"),
        )
    return {
        "parameters": model.num_parameters(),
        "token_agreement": agreement,
        "sentences_per_second": {name: setting.batch_size / value for name, value in seconds.items()},
        "ratios": {name: harness.ratios(timings, *runs_compared) for name, runs_compared in comparisons.items()},
        "rounds": harness.rounds(timings),
    }


def bench_classic_against_ours(args) -> dict:
    """Sentences per second: the tutorial-style one-sentence loop against batched greedy generate(), same rounds."""
    setting, device = args.setting, args.device
    torch.manual_seed(0)
    classic = ClassicSeq2Seq(setting.vocab_size, setting.embedding_size, setting.hidden_size).to(device).eval()
    input_ids = harness.random_ids(setting.batch_size, setting.source_length, setting.vocab_size, device)
    attention_mask = torch.ones_like(input_ids)
    sources = input_ids.tolist()

    def classic_one_by_one():
        for source in sources:
            classic_translate(classic, source, harness.BOS_ID, harness.EOS_ID, setting.new_tokens, ban_eos=True)

    runs = {"classic_one_by_one": classic_one_by_one}
    for attention_type in harness.ATTENTION_TYPES:
        model = harness.build_model(setting, attention_type, device).eval()
        runs[attention_type] = lambda model=model: generate_call(
            model, input_ids, attention_mask, setting.new_tokens, 1
        )
    timings = harness.interleaved_times(runs, device, max(3, args.repeats // 3))
    return {
        "classic_parameters": sum(p.numel() for p in classic.parameters()),
        "sentences_per_second": {name: setting.batch_size / value for name, value in harness.medians(timings).items()},
        "speedup_over_classic": {
            name: harness.ratios(timings, "classic_one_by_one", name) for name in harness.ATTENTION_TYPES
        },
        "rounds": harness.rounds(timings),
    }


TARGETS = {  # name in the results: (what is compared, needed; None: reported)
    "greedy_vs_hand": ("greedy generate() / hand loop", "<= 1.10"),
    "beam5_vs_hand": ("beam-5 generate() / hand beam search", "<= 1.20"),
    "steps_60_vs_30": ("greedy, 60 / 30 new tokens", "<= 2.1"),
    "greedy_vs_hand_with_stop_check": ("greedy generate() / hand loop with the stop check", None),
    "coverage_vs_none_greedy": ("greedy, coverage / none", None),
    "coverage_vs_none_beam5": ("beam 5, coverage / none", None),
    "working_tree_vs_revision_greedy": ("greedy, working tree / --rev", None),
    "working_tree_vs_revision_beam5": ("beam 5, working tree / --rev", None),
    "onnxruntime_vs_torch_greedy": ("greedy, onnxruntime / PyTorch", None),
    "onnxruntime_vs_torch_beam5": ("beam 5, onnxruntime / PyTorch", None),
}


def main(argv: list[str] | None = None) -> dict:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--rev", default=None, help="also time the model files of this git revision (same tokens)")
    parser.add_argument("--onnx", action="store_true", help="also time the ONNX export in onnxruntime (CPU)")
    args = harness.parse_args(parser, argv, repeats=7)
    if args.onnx and args.device != "cpu":
        parser.error("--onnx runs onnxruntime on the CPU: use it with --device cpu")
    revision_class = model_class_at_revision(args.rev) if args.rev else None
    results = {name: bench_attention_type(args, name, revision_class) for name in harness.ATTENTION_TYPES}
    classic = bench_classic_against_ours(args)
    targets = [
        harness.target(TARGETS[name][0], attention_type, measured, TARGETS[name][1])
        for name in TARGETS
        for attention_type, result in results.items()
        if (measured := result["ratios"].get(name)) is not None
    ]
    targets += [
        harness.target(f"onnxruntime {name}: rows with PyTorch's tokens", attention_type, share)
        for attention_type, result in results.items()
        for name in ("greedy", "beam5")
        if (share := result["token_agreement"].get(f"onnxruntime_{name}_rows_equal")) is not None
    ]
    targets += [
        harness.target("greedy sentences/s, generate() / classic one at a time", attention_type, speedup)
        for attention_type, speedup in classic["speedup_over_classic"].items()
    ]
    return harness.finish("bench_generate", args, {"attention_types": results, "classic": classic}, targets)


if __name__ == "__main__":
    main()
