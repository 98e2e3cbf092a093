"""The joint subword tokenizer: fixed special ids, `</s>` on both sides, and a lossless trip through AutoTokenizer."""

import pytest
from conftest import make_tokenizer
from main_job_helpers import ENGLISH, GERMAN, save_tiny_translator
from transformers import AutoTokenizer

from hf_simple_s2s.tokenization import SPECIAL_TOKENS, train_tokenizer

SENTENCES = GERMAN[:20] + ENGLISH[:20]


@pytest.fixture(params=["bpe", "unigram"])
def tokenizer(request):
    return make_tokenizer("multi30k", model=request.param)


def test_special_tokens_have_the_ids_the_model_expects(tokenizer):
    assert tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3]
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (
        0,
        1,
        2,
        3,
    )
    assert len(tokenizer) == 400


def test_sources_and_targets_end_with_eos_and_no_other_special_token(tokenizer):
    encoded = tokenizer(GERMAN[:8], text_target=ENGLISH[:8])
    for ids in encoded["input_ids"] + encoded["labels"]:
        assert ids[-1] == tokenizer.eos_token_id
        assert not set(ids[:-1]) & {0, 1, 2}


def test_decoding_gives_back_the_text(tokenizer):
    for sentence in SENTENCES:
        ids = tokenizer(sentence)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == sentence


def test_joint_vocabulary_covers_both_languages(tokenizer):
    tokens = set(tokenizer.get_vocab())
    assert {"▁Ein", "▁Mann"} <= tokens and {"▁A", "▁man"} <= tokens


def test_autotokenizer_reloads_the_saved_tokenizer_identically(tmp_path):
    tokenizer = make_tokenizer("multi30k")
    save_tiny_translator(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert reloaded(SENTENCES, text_target=SENTENCES[::-1]) == tokenizer(SENTENCES, text_target=SENTENCES[::-1])
    batch = reloaded(GERMAN[:4], padding=True, return_tensors="pt")
    assert reloaded.padding_side == "right" and (batch["input_ids"][batch["attention_mask"] == 0] == 0).all()
    assert (reloaded.pad_token_id, reloaded.bos_token_id, reloaded.eos_token_id, reloaded.unk_token_id) == (0, 1, 2, 3)


def test_lowercase_option_lowercases_before_segmenting():
    tokenizer = train_tokenizer(SENTENCES, vocab_size=200, lowercase=True)
    assert tokenizer.decode(tokenizer("Ein MANN")["input_ids"], skip_special_tokens=True) == "ein mann"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"model": "wordpiece"}, "`model` must be one of"), ({"vocab_size": 4}, "`vocab_size` must be an integer > 4")],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_tokenizer(SENTENCES, **kwargs)
