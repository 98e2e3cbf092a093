"""Shared fixtures: tiny configs and models, and the offline Hub environment every test runs in."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration  # noqa: E402

# Tiny models run fastest on one thread; more threads only contend on a small, shared machine.
torch.set_num_threads(1)

ATTENTION_TYPES = ["bahdanau", "luong_dot", "luong_general"]
VOCAB_SIZE = 40
# Token-id sources of different lengths (eos-terminated) and the generate() arguments the equivalence tests share.
SOURCES = [[5, 9, 14, 22, 7, 2], [31, 12, 2], [8, 8, 19, 25, 2], [4, 2]]
GEN = dict(max_new_tokens=8, pad_token_id=0, eos_token_id=2, decoder_start_token_id=1)


def tiny_config(**overrides) -> SimpleS2SConfig:
    """A config small enough that a forward pass takes milliseconds; two layers each side to exercise stacking."""
    values = dict(
        vocab_size=VOCAB_SIZE,
        embedding_size=12,
        hidden_size=16,
        encoder_layers=2,
        decoder_layers=2,
        dropout=0.0,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    values.update(overrides)
    return SimpleS2SConfig(**values)


def seeded_generator(seed: int) -> torch.Generator:
    """A generator on torch's default device, so that the tests also run with CUDA as the default device
    (`benchmarks/cuda_default_device.py`); on the CPU it draws what `torch.Generator().manual_seed(seed)` draws."""
    return torch.Generator(device=torch.get_default_device()).manual_seed(seed)


def tiny_model(seed: int = 0, **overrides) -> SimpleS2SForConditionalGeneration:
    torch.manual_seed(seed)
    return SimpleS2SForConditionalGeneration(tiny_config(**overrides)).eval()


@pytest.fixture(params=ATTENTION_TYPES)
def attention_type(request) -> str:
    return request.param


@pytest.fixture
def model(attention_type) -> SimpleS2SForConditionalGeneration:
    return tiny_model(attention_type=attention_type)


def make_word_tokenizer():
    """A word-level fast tokenizer over the tiny vocabulary: '<pad> <s> </s> <unk>' then 'w4' ... 'w39'."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({f"w{i}": i for i in range(4, VOCAB_SIZE)})
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


@pytest.fixture(scope="session")
def word_tokenizer():
    return make_word_tokenizer()


def padded_batch(rows: list[list[int]], side: str = "right", pad_token_id: int = 0):
    """Pad token-id lists into (input_ids, attention_mask) on the given side."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        input_ids[i, span] = torch.tensor(row)
        attention_mask[i, span] = 1
    return input_ids, attention_mask


def decode_step_by_step(model, input_ids, attention_mask, decoder_input_ids):
    """Feed `decoder_input_ids` one token at a time through the cache; returns (logits, last cache)."""
    encoder_outputs = model.get_encoder()(input_ids, attention_mask=attention_mask)
    cache, step_logits = None, []
    for t in range(decoder_input_ids.shape[1]):
        out = model(
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids[:, t : t + 1],
            cache=cache,
        )
        cache = out.cache
        step_logits.append(out.logits)
    return torch.cat(step_logits, dim=1), cache


def assert_beam_scores_match_rescoring(model, input_ids, attention_mask, num_beams=4, **generate_kwargs):
    """Beam search's final scores must equal a teacher-forced re-scoring of the returned sequences: they would not
    if a beam continued from another hypothesis' cache after reordering."""
    out = model.generate(
        input_ids,
        attention_mask=attention_mask,
        num_beams=num_beams,
        num_return_sequences=num_beams,
        length_penalty=0.0,
        output_scores=True,
        return_dict_in_generate=True,
        **generate_kwargs,
    )
    sequences = out.sequences  # (batch * beams, len), starting with the decoder start token
    logits = model(
        input_ids=input_ids.repeat_interleave(num_beams, dim=0),
        attention_mask=attention_mask.repeat_interleave(num_beams, dim=0),
        decoder_input_ids=sequences[:, :-1],
    ).logits
    token_logprobs = logits.log_softmax(-1).gather(-1, sequences[:, 1:, None]).squeeze(-1)
    eos = model.config.eos_token_id
    after_eos = (sequences[:, 1:-1] == eos).cumsum(-1) > 0  # positions after an emitted eos are padding
    token_logprobs[:, 1:][after_eos] = 0.0
    torch.testing.assert_close(token_logprobs.sum(-1), out.sequences_scores, atol=1e-4, rtol=1e-4)
