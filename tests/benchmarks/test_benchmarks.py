"""The benchmarks' fairness and the generation fast path: `generate()` must choose exactly what the hand-written
loops choose (the benchmark's floor), with and without the cache, and the lean `prepare_inputs_for_generation`
must hand `forward` what transformers' default would."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import seeded_generator
from transformers import GenerationMixin

from benchmarks.bench_generate import check_same_tokens, generate_call
from benchmarks.classic_seq2seq import ClassicSeq2Seq, classic_training_step, classic_translate

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
    agreement = check_same_tokens(model, input_ids, attention_mask, new_tokens=9)  # raises on any disagreement
    assert agreement["greedy_identical"]
    assert agreement["beam5_identical_rows"] + agreement["beam5_tied_rows"] == input_ids.shape[0]


@pytest.mark.parametrize("num_beams", [1, 4])
def test_generate_with_and_without_cache_match(model, num_beams):
    input_ids, attention_mask = padded_batch(model.config.vocab_size, seed=1)
    with_cache = generate_call(model, input_ids, attention_mask, 8, num_beams, use_cache=True)
    without_cache = generate_call(model, input_ids, attention_mask, 8, num_beams, use_cache=False)
    torch.testing.assert_close(with_cache, without_cache, rtol=0, atol=0)


def assert_same_model_inputs(ours: dict, default: dict):
    for key in set(ours) | set(default):
        ours_value, default_value = ours.get(key), default.get(key)
        if isinstance(default_value, torch.Tensor):
            torch.testing.assert_close(ours_value, default_value, rtol=0, atol=0)
        else:
            assert ours_value is default_value, key


@pytest.mark.parametrize("use_cache", [True, False])
def test_prepare_inputs_for_generation_matches_the_default(model, use_cache):
    input_ids, attention_mask = padded_batch(model.config.vocab_size)
    encoder_outputs = model.get_encoder()(input_ids, attention_mask=attention_mask, return_dict=True)
    decoder_input_ids = torch.tensor([[1, 5, 6]] * 4)
    kwargs = dict(attention_mask=attention_mask, encoder_outputs=encoder_outputs, use_cache=use_cache)
    cache = model(decoder_input_ids=decoder_input_ids[:, :2], **kwargs).cache if use_cache else None
    next_sequence_length = 1 if use_cache else None
    for step_kwargs in (dict(is_first_iteration=True), dict(cache=cache, next_sequence_length=next_sequence_length)):
        ours = model.prepare_inputs_for_generation(decoder_input_ids, **kwargs, **step_kwargs)
        default = GenerationMixin.prepare_inputs_for_generation(model, decoder_input_ids, **kwargs, **step_kwargs)
        assert_same_model_inputs(ours, default)


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


@pytest.mark.slow
@pytest.mark.parametrize("script", ["bench_generate", "bench_train", "bench_memory", "ab_generate"])
def test_benchmark_script_quick_run_writes_json(script, tmp_path):
    output = tmp_path / f"{script}.json"
    command = [sys.executable, "-m", f"benchmarks.{script}", "--quick", "--repeats", "2", "--output", str(output)]
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, timeout=900)
    record = json.loads(output.read_text())
    assert record["environment"]["quick"] is True
    assert record["environment"]["threads"] == 2
    assert len(record) > 1  # figures beside the environment
