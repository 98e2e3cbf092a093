"""Shared fixtures: tiny configs and models, the one tokenizer factory, and the offline Hub environment every test runs
in."""

import functools
import os
import signal

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration  # noqa: E402

# A suite started in the background (`nohup`, `&` in a script) inherits SIGINT ignored, and Python then installs no
# KeyboardInterrupt handler: the Ctrl-C tests (in this process and in the training processes it starts, which get the
# default disposition back at exec) need the handler an interactive run has.
signal.signal(signal.SIGINT, signal.default_int_handler)

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


def peaky_model(seed: int = 0, **overrides) -> SimpleS2SForConditionalGeneration:
    """A tiny model with large random weights, whose next-token distributions are far from uniform and differ from
    source to source: float noise between equivalent computations cannot flip an argmax, so token-exact comparisons
    mean something, and a row that got another row's state would show.

    Weights (embeddings, the pad's included) are drawn from [-0.5, 0.5] and biases from [-0.1, 0.1]: nothing is zero
    that would hide a mistake (from a zero state, a GRU with zero biases that reads a zero pad embedding stays at
    zero, so pads read by mistake would go unseen). The output layer's bias stays 0, or it would favour the same
    words whatever the source. With coverage, its projection is scaled up so that coverage really moves the attention.
    """
    model = tiny_model(seed, **overrides)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name != "lm_head.bias":
                bound = 0.1 if name.rsplit(".", 1)[-1].startswith("bias") else 0.5
                parameter.uniform_(-bound, bound)
        if model.config.coverage:
            model.model.decoder.attention.coverage_proj.weight.mul_(4.0)
    return model


@pytest.fixture(params=ATTENTION_TYPES)
def attention_type(request) -> str:
    return request.param


@pytest.fixture
def model(attention_type) -> SimpleS2SForConditionalGeneration:
    return tiny_model(attention_type=attention_type)


def multi30k_sample(language: str, size: int = 300) -> list[str]:
    """The first `size` sentences of the shipped Multi30k validation split, in `language` ("de" or "en")."""
    from hf_simple_s2s.data import MULTI30K_DIR, read_lines

    return read_lines(MULTI30K_DIR / f"val.{language}.gz")[:size]


@functools.cache
def make_tokenizer(
    kind: str = "words", model: str = "bpe", vocab_size: int = 400, model_max_length: int | None = None
):
    """The tokenizer of every test, with the package's special tokens (pad 0, bos 1, eos 2, unk 3, `</s>` appended).

    kind="words": 'w4' ... 'w39' are the ids 4..39 of the tiny models' vocabulary, so that ids read as words.
    kind="multi30k": the package's own `train_tokenizer` (`model`, `vocab_size`) on 300 German and 300 English
    Multi30k sentences, for real text of any script.
    Made once per set of arguments and shared: do not change it in a test.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from hf_simple_s2s.tokenization import EOS_TOKEN, SPECIAL_TOKENS, UNK_TOKEN, train_tokenizer, wrap_tokenizer

    if kind == "words":
        vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
        vocab.update({f"w{i}": i for i in range(len(SPECIAL_TOKENS), VOCAB_SIZE)})
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        backend.post_processor = processors.TemplateProcessing(
            single=f"$A {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, vocab[EOS_TOKEN])]
        )
        tokenizer = wrap_tokenizer(backend)
    elif kind == "multi30k":
        tokenizer = train_tokenizer(multi30k_sample("de") + multi30k_sample("en"), vocab_size=vocab_size, model=model)
    else:
        raise ValueError(f"`kind` must be 'words' or 'multi30k', got {kind!r}")
    if model_max_length is not None:
        tokenizer.model_max_length = model_max_length
    return tokenizer


@pytest.fixture(scope="session")
def word_tokenizer():
    return make_tokenizer("words")


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
