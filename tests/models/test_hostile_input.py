"""Hostile text through the tokenizer and the model: each either works with a sensible result or is refused with a
clear `ValueError` (malformed tensors: `TestInputErrors` in test_modeling_simple_s2s.py)."""

import pytest
import torch
from conftest import make_tokenizer, tiny_model

UNK_ID, EOS_ID = 3, 2
MAX_LENGTH = 32  # the tokenizer's model_max_length


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer("multi30k", model_max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def text_model(tokenizer):
    return tiny_model(vocab_size=len(tokenizer))


def translate_ids(model, tokenizer, texts: list[str], max_new_tokens: int = 5, **generate_kwargs) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    return model.generate(**batch, max_new_tokens=max_new_tokens, **generate_kwargs)


def assert_valid_output(sequences: torch.Tensor, batch_size: int, vocab_size: int) -> None:
    assert sequences.dim() == 2 and sequences.shape[0] == batch_size
    assert sequences.dtype == torch.long
    assert bool(((sequences >= 0) & (sequences < vocab_size)).all())


HOSTILE_TEXTS = {
    "empty": "",
    "whitespace": " \t\n ",
    "unknown_characters": "qqq zzz 12345 ¿¡ ∑∫ 🙂🙃",
    "control_characters": "a\x00b\x07c\x1b[31md\x7f\u0085",
    "invisible_and_bidi": "te\u200bst \u202eevil\u202c \ufeffbom",
    "mixed_scripts": "the мир 世界 مرحبا שלום नमस्ते ok",
    "combining_marks": "e\u0301\u0301\u0301\u0301 Z̷̡̛a̸l̶g̵o̴",
}


@pytest.mark.parametrize("text", HOSTILE_TEXTS.values(), ids=HOSTILE_TEXTS.keys())
def test_hostile_text_is_tokenized_into_the_vocabulary_and_translated(text, tokenizer, text_model):
    ids = tokenizer(text).input_ids
    assert ids[-1] == EOS_ID and all(0 <= i < len(tokenizer) for i in ids)
    outputs = translate_ids(text_model, tokenizer, [text, "a normal sentence"])
    assert_valid_output(outputs, 2, len(tokenizer))
    assert isinstance(tokenizer.batch_decode(outputs, skip_special_tokens=True)[0], str)


def test_unknown_characters_become_unk(tokenizer):
    assert UNK_ID in tokenizer("世界").input_ids
    assert UNK_ID in tokenizer("\x00").input_ids
    assert UNK_ID not in tokenizer("the cat").input_ids


def test_empty_strings_give_an_eos_only_source_and_the_same_output_alone_or_batched(tokenizer, text_model):
    assert tokenizer("").input_ids == [EOS_ID]
    alone = translate_ids(text_model, tokenizer, [""])
    batched = translate_ids(text_model, tokenizer, ["", "", "some words here"])
    assert torch.equal(batched[0, : alone.shape[1]], alone[0]) and torch.equal(batched[0], batched[1])


def test_an_empty_list_of_sentences_fails_in_the_tokenizer_so_callers_must_check_first(tokenizer):
    """transformers 5.24's fast tokenizer fails on `[]` with an IndexError (upstream); a translation helper must
    return [] for [] before tokenizing. If upstream fixes it, this test tells us to drop the workaround."""
    with pytest.raises(IndexError):
        tokenizer([], padding=True, return_tensors="pt")


def test_a_sentence_far_longer_than_training_is_truncated_per_model_max_length(tokenizer, text_model):
    text = " ".join(["the rain in spain"] * 300)  # ~1200 words; training sentences have a handful
    truncated = tokenizer(text, truncation=True).input_ids
    assert len(truncated) == MAX_LENGTH and truncated[-1] == EOS_ID
    # Without truncation the recurrent model has no length limit: 40x the truncated length still decodes sanely.
    full = tokenizer(text, return_tensors="pt")
    assert full.input_ids.shape[1] > 40 * MAX_LENGTH
    outputs = text_model.generate(
        **full, max_new_tokens=4, output_scores=True, return_dict_in_generate=True, do_sample=False
    )
    assert_valid_output(outputs.sequences, 1, len(tokenizer))
    assert all(torch.isfinite(step).all() for step in outputs.scores)


def test_very_large_num_beams(tokenizer, text_model):
    num_beams = 2 * len(tokenizer)  # more beams than vocabulary entries
    outputs = translate_ids(
        text_model,
        tokenizer,
        ["the cat", "a dog runs"],
        num_beams=num_beams,
        num_return_sequences=num_beams,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert_valid_output(outputs.sequences, 2 * num_beams, len(tokenizer))
    scores = outputs.sequences_scores.view(2, num_beams)
    assert torch.isfinite(scores).all()
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())  # returned best first
    best = translate_ids(text_model, tokenizer, ["the cat", "a dog runs"], num_beams=num_beams)
    assert torch.equal(best, outputs.sequences.view(2, num_beams, -1)[:, 0, : best.shape[1]])


def test_max_new_tokens_zero_is_refused_clearly(tokenizer, text_model):
    with pytest.raises(ValueError, match="max_new_tokens"):
        translate_ids(text_model, tokenizer, ["the cat"], max_new_tokens=0)


@pytest.mark.parametrize("kwargs", [dict(num_beams=0), dict(num_beams=-2), dict(num_return_sequences=0)], ids=str)
def test_a_count_below_one_is_refused_naming_it(tokenizer, text_model, kwargs):
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match=f"`{name}` must be an integer >= 1, got {value}"):
        translate_ids(text_model, tokenizer, ["the cat"], **kwargs)
