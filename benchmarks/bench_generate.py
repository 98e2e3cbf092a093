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

import contextlib
import importlib
import inspect
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import CompileConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteriaList
from transformers.generation import utils as generation_utils

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


# What generate() does at each decoding step (transformers 5.24, generation/utils.py `_sample`), by the name it is
# timed under: the object and attribute wrapped, and what it is.
STEP_PARTS = {
    "model_step": "the model's forward (our step: decoder, output layer)",
    "prepare_inputs": "prepare_inputs_for_generation (with, for remote-code classes, inspect.signature(forward), ~783)",
    "update_model_kwargs": "_update_model_kwargs_for_generation (the cache handed on)",
    "logits_processors": "LogitsProcessorList.__call__ (here: the EOS ban)",
    "stopping_criteria": "StoppingCriteriaList.__call__ (max length, EOS)",
    "stop_check": "StopCheck.__call__: unfinished_sequences.max() read back to the host (~396)",
}


@contextlib.contextmanager
def timed_parts(model, device: str):
    """Within the block, the parts of `STEP_PARTS` add their seconds to the yielded dict (synchronising CUDA around
    each, which serialises the GPU: the split shows where time goes, the plain runs what it costs in all)."""
    seconds = dict.fromkeys(STEP_PARTS, 0.0)

    def wrap(name, function):
        def timed_function(*args, **kwargs):
            harness.synchronize(device)
            start = time.perf_counter()
            result = function(*args, **kwargs)
            harness.synchronize(device)
            seconds[name] += time.perf_counter() - start
            return result

        return timed_function

    methods = {  # on the model instance (generate() looks them up there)
        "model_step": "forward",
        "prepare_inputs": "prepare_inputs_for_generation",
        "update_model_kwargs": "_update_model_kwargs_for_generation",
    }
    calls = {  # on the class (Python looks `__call__` up there)
        "logits_processors": LogitsProcessorList,
        "stopping_criteria": StoppingCriteriaList,
        "stop_check": generation_utils.StopCheck,
    }
    for name, attribute in methods.items():
        setattr(model, attribute, wrap(name, getattr(model, attribute)))
    originals = {name: cls.__dict__["__call__"] for name, cls in calls.items()}
    for name, cls in calls.items():
        cls.__call__ = wrap(name, originals[name])
    try:
        yield seconds
    finally:
        for attribute in methods.values():
            delattr(model, attribute)  # the class's method again
        for name, cls in calls.items():
            cls.__call__ = originals[name]


def bench_step_costs(args, attention_type: str) -> dict:
    """generate()'s greedy step split into its parts (ms per step, median over rounds), the hand loop's step beside
    it; and the cost of the remote-code check transformers makes at every step for a class registered for the Auto
    classes (generation/utils.py ~783: `is_remote_code()` and `inspect.signature(self.forward)`), measured by
    timing generate() with and without the registration in one round-robin."""
    setting, device, new_tokens = args.setting, args.device, args.setting.new_tokens
    model = harness.build_model(setting, attention_type, device).eval()
    input_ids = harness.random_ids(setting.batch_size, setting.source_length, setting.vocab_size, device)
    attention_mask = torch.ones_like(input_ids)
    rounds = []
    for _ in range(args.repeats + 1):  # the first round warms up
        with timed_parts(model, device) as seconds:
            with harness.timed(timings := harness.Timings(["generate"]), "generate", device):
                generate_call(model, input_ids, attention_mask, new_tokens, 1)
        seconds["rest_of_generate"] = timings["generate"][0] - sum(seconds.values())
        seconds["generate"] = timings["generate"][0]
        rounds.append(seconds)
    per_step_ms = {name: 1e3 * statistics.median(r[name] for r in rounds[1:]) / new_tokens for name in rounds[0]}

    model_class = type(model)
    registered = model_class._auto_class

    def unregistered():
        model_class._auto_class = None  # is_remote_code() False: the signature check is skipped
        try:
            return generate_call(model, input_ids, attention_mask, new_tokens, 1)
        finally:
            model_class._auto_class = registered

    timings = harness.interleaved_times(
        {
            "registered": lambda: generate_call(model, input_ids, attention_mask, new_tokens, 1),
            "unregistered": unregistered,
            "hand_greedy": lambda: hand_greedy(model, input_ids, attention_mask, new_tokens),
        },
        device,
        args.repeats,
    )
    seconds = harness.medians(timings)
    calls = 1000
    start = time.perf_counter()
    for _ in range(calls):
        "cache_position" in set(inspect.signature(model.forward).parameters)  # noqa: B015  (what ~783 computes)
    registration_cost = seconds["registered"] - seconds["unregistered"]
    return {
        "parts": STEP_PARTS,
        "per_step_ms": per_step_ms,
        "hand_greedy_per_step_ms": 1e3 * seconds["hand_greedy"] / new_tokens,
        "remote_code_check_per_step_ms": {
            "signature_alone": 1e3 * (time.perf_counter() - start) / calls,
            "generate_registered_minus_unregistered": 1e3 * registration_cost / new_tokens,
        },
        "ratios": {"registered_vs_unregistered": harness.ratios(timings, "registered", "unregistered")},
        "rounds": {"parts": rounds, **harness.rounds(timings)},
    }


# Source lengths of a stream of batches, padded up to a multiple of BUCKET (the tokenizer's `pad_to_multiple_of`):
# the compiled step sees a few shapes only, so it compiles a bounded number of times.
BUCKET = 8
STREAM_SOURCE_LENGTHS = (20, 13, 17, 22, 27, 19)


def compile_config(device: str) -> CompileConfig:
    """What generate() compiles with on a GPU by default (inductor, CUDA graphs), also on the CPU when asked."""
    config = CompileConfig(fullgraph=True)
    config._compile_all_devices = device == "cpu"  # generate() compiles on accelerators only, unless told
    return config


def bench_compiled(args, attention_type: str) -> dict:
    """generate() compiling its decoding step itself (greedy: `cache_implementation="static"` + `compile_config`);
    beam search, which transformers calls uncompiled, with the model's forward compiled from outside. Compile time of
    the first call at each bucketed source length, then compiled against eager and the hand loops, one round-robin.
    Compiled kernels may differ from eager in the last bits: the share of equal rows is reported."""
    setting, device, new_tokens = args.setting, args.device, args.setting.new_tokens
    torch._dynamo.reset()  # each attention type compiles from scratch (and within dynamo's recompile limit)
    model = harness.build_model(setting, attention_type, device).eval()
    compiled_forward_model = harness.build_model(setting, attention_type, device).eval()
    # Not fullgraph: the first call of each generate() checks its inputs (a graph break); the steps compile whole.
    forward_config = {**compile_config(device).to_dict(), "fullgraph": False}
    compiled_forward_model.forward = torch.compile(compiled_forward_model.forward, **forward_config)
    input_ids = harness.random_ids(setting.batch_size, setting.source_length, setting.vocab_size, device)
    attention_mask = torch.ones_like(input_ids)
    config = compile_config(device)

    def compiled_greedy(ids=input_ids, mask=attention_mask):
        return generate_call(
            model,
            ids,
            mask,
            new_tokens,
            1,
            cache_implementation="static",
            compile_config=config,
            disable_compile=False,
        )

    def compiled_beam(ids=input_ids, mask=attention_mask):
        return generate_call(compiled_forward_model, ids, mask, new_tokens, NUM_BEAMS, cache_implementation="static")

    first_calls = {"greedy": [], "beam5": []}
    for length in STREAM_SOURCE_LENGTHS:  # the first batch of each bucket compiles; the others reuse its graph
        bucket = -(-length // BUCKET) * BUCKET
        ids = harness.random_ids(setting.batch_size, bucket, setting.vocab_size, device, seed=length)
        mask = (torch.arange(bucket, device=device) < length).long().expand(setting.batch_size, -1)  # right pads
        for name, run in (("greedy", compiled_greedy), ("beam5", compiled_beam)):
            with harness.timed(timings := harness.Timings([name]), name, device):
                run(ids, mask)
            first_calls[name].append({"source_length": length, "bucket": bucket, "seconds": timings[name][0]})
    agreement = {
        "greedy_rows_equal": (compiled_greedy() == generate_call(model, input_ids, attention_mask, new_tokens, 1))
        .all(dim=1)
        .float()
        .mean()
        .item(),
        "beam5_rows_equal": (compiled_beam() == generate_call(model, input_ids, attention_mask, new_tokens, NUM_BEAMS))
        .all(dim=1)
        .float()
        .mean()
        .item(),
    }
    runs = {
        "compiled_greedy": compiled_greedy,
        "generate_greedy": lambda: generate_call(model, input_ids, attention_mask, new_tokens, 1),
        "hand_greedy": lambda: hand_greedy(model, input_ids, attention_mask, new_tokens),
        "compiled_beam5": compiled_beam,
        "generate_beam5": lambda: generate_call(model, input_ids, attention_mask, new_tokens, NUM_BEAMS),
        "hand_beam5": lambda: hand_beam_search(model, input_ids, attention_mask, new_tokens, NUM_BEAMS),
    }
    timings = harness.interleaved_times(runs, device, args.repeats)
    comparisons = {
        "compiled_greedy_vs_hand": ("compiled_greedy", "hand_greedy"),
        "compiled_greedy_vs_eager": ("compiled_greedy", "generate_greedy"),
        "compiled_beam5_vs_hand": ("compiled_beam5", "hand_beam5"),
        "compiled_beam5_vs_eager": ("compiled_beam5", "generate_beam5"),
    }
    seconds = harness.medians(timings)
    return {
        "first_call_per_source_length": first_calls,
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
    for attention_type in args.attention_types:
        model = harness.build_model(setting, attention_type, device).eval()
        runs[attention_type] = lambda model=model: generate_call(
            model, input_ids, attention_mask, setting.new_tokens, 1
        )
    timings = harness.interleaved_times(runs, device, max(3, args.repeats // 3))
    return {
        "classic_parameters": sum(p.numel() for p in classic.parameters()),
        "sentences_per_second": {name: setting.batch_size / value for name, value in harness.medians(timings).items()},
        "speedup_over_classic": {
            name: harness.ratios(timings, "classic_one_by_one", name) for name in args.attention_types
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


def step_costs_main(args) -> dict:
    results = {name: bench_step_costs(args, name) for name in args.attention_types}
    targets = []
    for attention_type, result in results.items():
        targets += [
            harness.target(f"greedy generate(), ms per step: {part}", attention_type, ms)
            for part, ms in result["per_step_ms"].items()
        ]
        targets += [
            harness.target("greedy hand loop, ms per step", attention_type, result["hand_greedy_per_step_ms"]),
            harness.target(
                "remote-code check, ms per step: inspect.signature(forward) alone",
                attention_type,
                result["remote_code_check_per_step_ms"]["signature_alone"],
            ),
            harness.target(
                "greedy generate(), registered for Auto classes / not",
                attention_type,
                result["ratios"]["registered_vs_unregistered"],
            ),
        ]
    return harness.finish("bench_generate_step_costs", args, {"attention_types": results}, targets)


def bench_folder_throughput(args) -> dict:
    """Sentences per second of a trained folder on Multi30k test 2016 (batches of 128 sorted by length, sources padded
    to a multiple of BUCKET, stopping at EOS as users decode), greedy and beam 5, eager against compiled (as in
    `bench_compiled`); one pass each after a warm-up pass that compiles (its time reported)."""
    from hf_simple_s2s.data import MULTI30K_DIR, load_parallel_corpus
    from hf_simple_s2s.inference.translate import load_translator

    device = args.device
    torch._dynamo.reset()
    sources = [pair["de"] for pair in load_parallel_corpus(MULTI30K_DIR, "de", "en")["test"]["translation"]]
    sources = sorted(sources[: 32 if args.quick else None], key=len)
    model, tokenizer = load_translator(args.folder, device)
    compiled_forward_model, _ = load_translator(args.folder, device)
    forward_config = {**compile_config(device).to_dict(), "fullgraph": False}
    compiled_forward_model.forward = torch.compile(compiled_forward_model.forward, **forward_config)
    batches = [
        tokenizer(sources[start : start + 128], padding=True, pad_to_multiple_of=BUCKET, return_tensors="pt").to(
            device
        )
        for start in range(0, len(sources), 128)
    ]
    runs = {
        "eager_greedy": (model, dict(num_beams=1)),
        "compiled_greedy": (
            model,
            dict(num_beams=1, cache_implementation="static", compile_config=compile_config(device)),
        ),
        "eager_beam5": (model, dict(num_beams=NUM_BEAMS)),
        "compiled_beam5": (compiled_forward_model, dict(num_beams=NUM_BEAMS, cache_implementation="static")),
    }
    result = {"folder": str(args.folder), "test_sentences": len(sources), "batch_size": 128}
    for name, (decoder, options) in runs.items():
        outputs = []
        for attempt in ("warmup_seconds", "seconds"):
            with harness.timed(timings := harness.Timings([name]), name, device):
                outputs = [decoder.generate(**batch, max_length=64, **options) for batch in batches]
            result.setdefault(name, {})[attempt] = timings[name][0]
        result[name]["sentences_per_second"] = len(sources) / result[name]["seconds"]
        result[name]["texts"] = [
            text for ids in outputs for text in tokenizer.batch_decode(ids, skip_special_tokens=True)
        ]
    for search in ("greedy", "beam5"):
        eager, compiled = result[f"eager_{search}"], result[f"compiled_{search}"]
        same = sum(a == b for a, b in zip(eager.pop("texts"), compiled.pop("texts"), strict=True))
        result[f"identical_translations_{search}"] = same / len(sources)
    return result


COMPILED_TARGETS = {  # name in the results: (what is compared, needed on a GPU; the CPU's are reported)
    "compiled_greedy_vs_hand": ("compiled greedy generate() / eager hand loop", "<= 1.0"),
    "compiled_beam5_vs_hand": ("beam-5 generate(), forward compiled / eager hand beam search", "<= 1.2"),
    "compiled_greedy_vs_eager": ("compiled greedy generate() / eager generate()", None),
    "compiled_beam5_vs_eager": ("beam-5 generate(), forward compiled / eager", None),
}


def compiled_main(args) -> dict:
    results = {name: bench_compiled(args, name) for name in args.attention_types}
    folder = bench_folder_throughput(args) if args.folder else None
    on_gpu = args.device.startswith("cuda")
    targets = [
        harness.target(
            COMPILED_TARGETS[name][0], attention_type, measured, COMPILED_TARGETS[name][1] if on_gpu else None
        )
        for name in COMPILED_TARGETS
        for attention_type, result in results.items()
        if (measured := result["ratios"].get(name)) is not None
    ]
    for attention_type, result in results.items():
        for search, calls in result["first_call_per_source_length"].items():
            targets += [
                harness.target(
                    f"{search}: first call, source length {call['source_length']} (bucket {call['bucket']}), s",
                    attention_type,
                    call["seconds"],
                )
                for call in calls
            ]
        targets += [
            harness.target(f"compiled {name.replace('_', ' ')}", attention_type, share)
            for name, share in result["token_agreement"].items()
        ]
    if folder:
        for name in ("eager_greedy", "compiled_greedy", "eager_beam5", "compiled_beam5"):
            label = f"Multi30k test 2016, batch 128, {name.replace('_', ' ')}"
            targets += [
                harness.target(f"{label}: sentences/s", "folder", folder[name]["sentences_per_second"]),
                harness.target(f"{label}: first pass (compiles), s", "folder", folder[name]["warmup_seconds"]),
            ]
        targets += [
            harness.target(f"Multi30k test 2016, compiled = eager translations, {search}", "folder", share)
            for search in ("greedy", "beam5")
            if (share := folder[f"identical_translations_{search}"]) is not None
        ]
    return harness.finish("bench_generate_compiled", args, {"attention_types": results, "folder": folder}, targets)


def main(argv: list[str] | None = None) -> dict:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--rev", default=None, help="also time the model files of this git revision (same tokens)")
    parser.add_argument("--onnx", action="store_true", help="also time the ONNX export in onnxruntime (CPU)")
    parser.add_argument("--step_costs", action="store_true", help="only: generate()'s greedy step split in its parts")
    parser.add_argument("--compile", action="store_true", help="only: compiled decoding (compile time, speed)")
    parser.add_argument("--folder", default=None, help="with --compile: a trained folder on Multi30k test 2016 too")
    parser.add_argument(
        "--attention_types", nargs="+", choices=harness.ATTENTION_TYPES, default=harness.ATTENTION_TYPES
    )
    args = harness.parse_args(parser, argv, repeats=7)
    if args.onnx and args.device != "cpu":
        parser.error("--onnx runs onnxruntime on the CPU: use it with --device cpu")
    if args.step_costs:
        return step_costs_main(args)
    if args.compile:
        return compiled_main(args)
    revision_class = model_class_at_revision(args.rev) if args.rev else None
    results = {name: bench_attention_type(args, name, revision_class) for name in args.attention_types}
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
