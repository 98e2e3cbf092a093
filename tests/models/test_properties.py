"""Property-based checks (hypothesis) of the model's equivalences over random lengths, paddings and attention
types, and a fuzz test of the tokenizer + model path that may only ever raise our clear `ValueError`s."""

import functools

import pytest
import torch
from conftest import ATTENTION_TYPES, VOCAB_SIZE, padded_batch, seeded_generator, tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reversal_task import build_tokenizer

# Bounded and reproducible in CI; no example database written into the repository.
BOUNDED = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@functools.cache
def cached_model(attention_type: str, bidirectional: bool, vocab_size: int = VOCAB_SIZE):
    return tiny_model(attention_type=attention_type, bidirectional_encoder=bidirectional, vocab_size=vocab_size)


@functools.cache
def cached_tokenizer():
    return build_tokenizer(model_max_length=24)


def trim_after_eos(sequence: torch.Tensor, eos_token_id: int = 2) -> list[int]:
    """A generated row up to its first eos, without the pads that batching appends after it."""
    ids = sequence.tolist()
    return ids[: ids.index(eos_token_id) + 1] if eos_token_id in ids else ids


model_setups = st.tuples(st.sampled_from(ATTENTION_TYPES), st.booleans())
source_rows = st.lists(st.lists(st.integers(3, VOCAB_SIZE - 1), min_size=1, max_size=9), min_size=1, max_size=4)


@BOUNDED
@given(setup=model_setups, rows=source_rows, side=st.sampled_from(["left", "right"]))
def test_batched_generate_equals_one_by_one(setup, rows, side):
    model = cached_model(*setup)
    input_ids, attention_mask = padded_batch(rows, side)
    batched = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=6, do_sample=False)
    for row, generated in zip(rows, batched, strict=True):
        alone = model.generate(torch.tensor([row]), max_new_tokens=6, do_sample=False)
        assert trim_after_eos(generated) == trim_after_eos(alone[0])


@BOUNDED
@given(
    setup=model_setups, rows=source_rows, side=st.sampled_from(["left", "right"]), num_beams=st.sampled_from([1, 3])
)
def test_generate_with_cache_equals_without(setup, rows, side, num_beams):
    model = cached_model(*setup)
    input_ids, attention_mask = padded_batch(rows, side)
    kwargs = dict(attention_mask=attention_mask, max_new_tokens=5, num_beams=num_beams, do_sample=False)
    assert torch.equal(
        model.generate(input_ids, use_cache=True, **kwargs), model.generate(input_ids, use_cache=False, **kwargs)
    )


@BOUNDED
@given(
    setup=model_setups,
    row=st.lists(st.integers(3, VOCAB_SIZE - 1), min_size=1, max_size=9),
    left=st.integers(0, 5),
    right=st.integers(0, 5),
    target=st.lists(st.integers(3, VOCAB_SIZE - 1), min_size=1, max_size=6),
)
def test_source_padding_does_not_change_logits(setup, row, left, right, target):
    model = cached_model(*setup)
    decoder_input_ids = torch.tensor([[1, *target]])
    expected = model(torch.tensor([row]), decoder_input_ids=decoder_input_ids).logits
    padded = torch.tensor([[0] * left + row + [0] * right])
    attention_mask = (torch.arange(padded.shape[1]) >= left) & (torch.arange(padded.shape[1]) < left + len(row))
    logits = model(padded, attention_mask.long().unsqueeze(0), decoder_input_ids).logits
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)


@BOUNDED
@given(
    texts=st.lists(st.text(max_size=80), min_size=1, max_size=4),
    num_beams=st.sampled_from([1, 2]),
    setup=model_setups,
)
def test_fuzz_tokenizer_and_model_path(texts, num_beams, setup):
    """Any unicode text, translated: a valid batch of ids and decodable strings, or our ValueError."""
    tokenizer = cached_tokenizer()
    model = cached_model(*setup, vocab_size=len(tokenizer))
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
    attention_type=st.sampled_from(ATTENTION_TYPES),
)
def test_fuzz_tensor_inputs_only_raise_value_errors(
    batch_size, src_len, rank, id_range, dtype, mask_kind, attention_type
):
    """Random shapes, dtypes, out-of-vocabulary ids and masks into forward and generate: well-formed inputs work,
    every other one is refused with a ValueError naming the argument.
    """
    model = cached_model(attention_type, True)
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
