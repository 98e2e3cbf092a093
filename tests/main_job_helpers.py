"""Small real data, a tokenizer trained on it and a tiny untrained model saved with it, for the main-job tests."""

import functools
from pathlib import Path

import torch

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from hf_simple_s2s.data import MULTI30K_DIR, read_lines
from hf_simple_s2s.tokenization import train_tokenizer

GERMAN = read_lines(MULTI30K_DIR / "val.de.gz")[:300]
ENGLISH = read_lines(MULTI30K_DIR / "val.en.gz")[:300]


@functools.cache
def small_tokenizer(model: str = "bpe", vocab_size: int = 400):
    return train_tokenizer(GERMAN + ENGLISH, vocab_size=vocab_size, model=model)


def tiny_translation_model(vocab_size: int, seed: int = 0, **overrides) -> SimpleS2SForConditionalGeneration:
    torch.manual_seed(seed)
    values = dict(vocab_size=vocab_size, embedding_size=16, hidden_size=16, dropout=0.0)
    config = SimpleS2SConfig(**{**values, **overrides})
    return SimpleS2SForConditionalGeneration(config).eval()


def save_tiny_translator(directory: Path, **overrides) -> Path:
    """An untrained model and the small tokenizer, saved together as `simple-s2s-train` would."""
    tokenizer = small_tokenizer()
    model = tiny_translation_model(len(tokenizer), **overrides)
    model.generation_config.max_length = 12  # an untrained model never stops on its own
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
