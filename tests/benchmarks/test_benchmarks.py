"""The benchmarks: their comparisons are fair (`generate()` chooses exactly what the hand-written loops choose, and an
unfair comparison is refused), the baselines work, and every script runs with `--quick` and writes the harness's
JSON record."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import seeded_generator
from transformers import LogitsProcessorList, StoppingCriteriaList
from transformers.generation.utils import StopCheck

from benchmarks import bench_generate, bench_quality
from benchmarks.baselines.classic_seq2seq import ClassicSeq2Seq, classic_training_step, classic_translate
from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from hf_simple_s2s.tokenization import train_tokenizer

REPO_ROOT = Path(__file__).parents[2]


def padded_batch(vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four sources of length 7: left padding, right padding, none, and both sides."""
    generator = seeded_generator(seed)
    input_ids = torch.randint(4, vocab_size, (4, 7), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :3] = 0
    attention_mask[1, 5:] = 0
    attention_mask[3, [0, 6]] = 0
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask


def test_generate_chooses_what_the_hand_loops_choose(model):
    input_ids, attention_mask = padded_batch(model.config.vocab_size)
    agreement = bench_generate.check_same_tokens(model, input_ids, attention_mask, new_tokens=9)  # raises if not
    assert agreement["greedy_identical"]
    assert agreement["beam5_identical_rows"] + agreement["beam5_tied_rows"] == input_ids.shape[0]


def test_an_unfair_comparison_is_refused(model, monkeypatch):
    input_ids, attention_mask = padded_batch(model.config.vocab_size)
    other_tokens = torch.full((4, 9), 5)
    monkeypatch.setattr(bench_generate, "hand_greedy", lambda *args, **kwargs: other_tokens)
    with pytest.raises(AssertionError, match="chose different tokens"):
        bench_generate.check_same_tokens(model, input_ids, attention_mask, new_tokens=9)


def test_step_costs_time_every_part_and_put_generate_back(model):
    input_ids, attention_mask = padded_batch(model.config.vocab_size)
    originals = {cls: cls.__dict__["__call__"] for cls in (LogitsProcessorList, StoppingCriteriaList, StopCheck)}
    with bench_generate.timed_parts(model, "cpu") as seconds:
        timed = bench_generate.generate_call(model, input_ids, attention_mask, new_tokens=5, num_beams=1)
    assert set(seconds) == set(bench_generate.STEP_PARTS) and all(value > 0 for value in seconds.values())
    assert "forward" not in vars(model) and "prepare_inputs_for_generation" not in vars(model)
    assert all(cls.__dict__["__call__"] is original for cls, original in originals.items())
    assert torch.equal(timed, bench_generate.generate_call(model, input_ids, attention_mask, 5, num_beams=1))


def test_classic_seq2seq_learns_a_fixed_batch_and_decodes_to_length():
    torch.manual_seed(0)
    classic = ClassicSeq2Seq(vocab_size=20, embedding_size=8, hidden_size=12, dropout=0.0)
    optimizer = torch.optim.Adam(classic.parameters(), lr=3e-2)
    src = torch.randint(4, 20, (5, 3))  # (src_len, batch)
    trg = torch.cat([torch.ones(1, 3, dtype=torch.long), torch.randint(4, 20, (3, 3))])  # BOS first
    losses = [classic_training_step(classic, optimizer, src, trg, pad_token_id=0) for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0]
    tokens = classic_translate(classic.eval(), src[:, 0].tolist(), 1, 2, max_len=7, ban_eos=True)
    assert len(tokens) == 7 and 2 not in tokens


def assert_harness_record(record: dict, quick: bool = True):
    assert set(record) == {"environment", "setting", "results", "targets"}
    assert record["environment"]["quick"] is quick
    assert record["targets"], "every benchmark states what it measured against what"
    for row in record["targets"]:
        assert set(row) == {"target", "case", "needed", "measured", "estimators", "met"}
        assert (row["met"] is None) == (row["needed"] is None)


def test_quality_of_trained_folders(tmp_path):
    """`bench_quality --folders`: saved model folders with their tokenizer, and two of them as one ensemble
    ("a,b"), scored on Multi30k's test set."""
    tokenizer = train_tokenizer(["ein hund läuft", "a dog runs", "zwei männer", "two men"] * 10, vocab_size=60)
    for seed, name, attention_type in ((0, "tiny", "bahdanau"), (1, "tiny_dot", "luong_dot")):
        torch.manual_seed(seed)
        config = SimpleS2SConfig(
            vocab_size=len(tokenizer), embedding_size=8, hidden_size=8, attention_type=attention_type
        )
        SimpleS2SForConditionalGeneration(config).save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    output = tmp_path / "quality.json"
    folders = [str(tmp_path / "tiny"), f"{tmp_path / 'tiny'},{tmp_path / 'tiny_dot'}"]
    record = bench_quality.main(["--quick", "--threads", "1", "--folders", *folders, "--output", str(output)])
    assert json.loads(output.read_text()) == json.loads(json.dumps(record, default=str))
    assert_harness_record(record)
    assert record["setting"]["test_sentences"] == 16
    assert set(record["results"]["tiny"]) == {"options", "num_beams", "greedy", "beam"}
    assert record["results"]["tiny"]["options"]["attention_type"] == "bahdanau"
    ensemble = record["results"]["tiny+tiny_dot"]
    assert [member["attention_type"] for member in ensemble["options"]] == ["bahdanau", "luong_dot"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, arguments",
    [
        ("bench_generate", ["--rev", "HEAD", "--onnx"]),  # and the committed model files, and onnxruntime
        ("bench_generate", ["--step_costs"]),
        ("bench_generate", ["--compile", "--attention_types", "luong_dot"]),  # inductor on the CPU: minutes
        ("bench_int8", ["--onnx"]),
        ("bench_train", []),
        ("bench_memory", []),
        ("bench_quality", []),
        ("bench_device", []),
        ("bench_startup", []),
        ("bench_streaming", ["--pairs", "2000", "--memory_pairs", "1000"]),  # corpora in pytest's tmp_path
    ],
)
def test_quick_run_writes_the_harness_record(script, arguments, tmp_path):
    output = tmp_path / f"{script}.json"
    command = [sys.executable, "-m", f"benchmarks.{script}", "--quick", "--repeats", "2", "--output", str(output)]
    if script == "bench_streaming":
        arguments = [*arguments, "--corpus_dir", str(tmp_path / "corpora")]
    subprocess.run(command + arguments, cwd=REPO_ROOT, check=True, capture_output=True, timeout=900)
    record = json.loads(output.read_text())
    assert_harness_record(record)
    assert record["environment"]["threads"] == 2
