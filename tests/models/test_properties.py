"""Property-based checks (hypothesis): the model's equivalences (`equivalences.py`) on random sources, lengths and
paddings over the grid of setups, and fuzz tests of the tokenizer + model path that may only ever raise our clear
`ValueError`s."""

import functools

import pytest
import torch
from conftest import VOCAB_SIZE, make_tokenizer, padded_batch, seeded_generator
from equivalences import (
    SETUPS,
    assert_batched_generate_equals_one_by_one,
    assert_generate_with_cache_equals_without,
    assert_padding_changes_no_logits,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Bounded and reproducible in CI; no example database written into the repository.
BOUNDED = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@functools.cache
def cached_model(setup, vocab_size: int = VOCAB_SIZE):
    return setup.model(vocab_size=vocab_size)


setups = st.sampled_from(SETUPS)
source_rows = st.lists(st.lists(st.integers(3, VOCAB_SIZE - 1), min_size=1, max_size=9), min_size=1, max_size=4)


@BOUNDED
@given(setup=setups, rows=source_rows, side=st.sampled_from(["left", "right"]))
def test_batched_generate_equals_one_by_one(setup, rows, side):
    assert_batched_generate_equals_one_by_one(
        cached_model(setup), rows, num_beams=1, sides=(side,), max_new_tokens=6, do_sample=False
    )


@BOUNDED
@given(setup=setups, rows=source_rows, side=st.sampled_from(["left", "right"]), num_beams=st.sampled_from([1, 3]))
def test_generate_with_cache_equals_without(setup, rows, side, num_beams):
    input_ids, attention_mask = padded_batch(rows, side)
    assert_generate_with_cache_equals_without(
        cached_model(setup), input_ids, attention_mask, num_beams, max_new_tokens=5, do_sample=False
    )


@BOUNDED
@given(
    setup=setups,
    row=st.lists(st.integers(3, VOCAB_SIZE - 1), min_size=1, max_size=9),
    left=st.integers(0, 5),
    right=st.integers(0, 5),
    target=st.lists(st.integers(3, VOCAB_SIZE - 1), min_size=1, max_size=6),
)
def test_source_padding_on_both_sides_does_not_change_logits(setup, row, left, right, target):
    padded = torch.tensor([[0] * left + row + [0] * right])
    attention_mask = (torch.arange(padded.shape[1]) >= left) & (torch.arange(padded.shape[1]) < left + len(row))
    decoder_input_ids = torch.tensor([[1, *target]])
    assert_padding_changes_no_logits(
        cached_model(setup), padded, attention_mask.long().unsqueeze(0), decoder_input_ids, rtol=1e-5, atol=1e-6
    )


@BOUNDED
@given(
    texts=st.lists(st.text(max_size=80), min_size=1, max_size=4),
    num_beams=st.sampled_from([1, 2]),
    setup=setups,
)
def test_fuzz_tokenizer_and_model_path(texts, num_beams, setup):
    """Any unicode text, translated: a valid batch of ids and decodable strings, or our ValueError."""
    tokenizer = make_tokenizer("multi30k", model_max_length=24)
    model = cached_model(setup, vocab_size=len(tokenizer))
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    assert batch.input_ids.shape[1] <= tokenizer.model_max_length
    generated = model.generate(**batch, max_new_tokens=4, num_beams=num_beams, do_sample=False)
    assert generated.shape[0] == len(texts) and int(generated.max()) < len(tokenizer)
    assert all(isinstance(text, str) for text in tokenizer.batch_decode(generated, skip_special_tokens=True))


any_dtypes = st.sampled_from([torch.long, torch.long, torch.int32, torch.float32, torch.bool])


@settings(BOUNDED, max_examples=60)
@given(
    batch_size=st.integers(0, 4),
    src_len=st.integers(0, 7),
    rank=st.sampled_from([2, 2, 2, 1, 3]),
    id_range=st.sampled_from([(3, VOCAB_SIZE), (3, VOCAB_SIZE), (-3, VOCAB_SIZE), (3, 2 * VOCAB_SIZE)]),
    dtype=any_dtypes,
    mask_kind=st.sampled_from(["none", "ones", "random", "zeros", "wrong_shape"]),
    setup=setups,
)
def test_fuzz_tensor_inputs_only_raise_value_errors(batch_size, src_len, rank, id_range, dtype, mask_kind, setup):
    """Random shapes, dtypes, out-of-vocabulary ids and masks into forward and generate: well-formed inputs work,
    every other one is refused with a ValueError naming the argument.
    """
    model = cached_model(setup)
    shape = [batch_size, src_len, 2][:rank] if rank > 1 else [src_len]
    generator = seeded_generator(sum(shape) * 1000 + id_range[0])
    input_ids = torch.randint(*id_range, tuple(shape), generator=generator).to(dtype)
    mask = {
        "none": None,
        "ones": torch.ones(tuple(shape), dtype=torch.long),
        "random": torch.randint(0, 2, tuple(shape), generator=generator),
        "zeros": torch.zeros(tuple(shape), dtype=torch.long),
        "wrong_shape": torch.ones(tuple(shape) + (2,), dtype=torch.long),
    }[mask_kind]
    in_vocabulary = bool(((input_ids >= 0) & (input_ids < VOCAB_SIZE)).all())
    well_formed = (
        rank == 2
        and input_ids.numel() > 0
        and in_vocabulary
        and dtype in (torch.long, torch.int32)
        and mask_kind != "wrong_shape"
    )
    for call in (
        lambda: model(input_ids, mask, decoder_input_ids=torch.ones(shape[0], 2, dtype=torch.long)),
        lambda: model.generate(input_ids, attention_mask=mask, max_new_tokens=3),
    ):
        if well_formed:  # random masks, fully padded rows included, must simply work
            call()
            continue
        with pytest.raises(ValueError) as error:
            call()
        assert any(name in str(error.value) for name in ("input_ids", "attention_mask"))
