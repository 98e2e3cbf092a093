"""Small real data and a tiny untrained model saved with the test tokenizer, for the main-job and translation tests."""

from pathlib import Path

import torch
from conftest import make_tokenizer, multi30k_sample

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration

GERMAN = multi30k_sample("de")
ENGLISH = multi30k_sample("en")


def tiny_translation_model(vocab_size: int, seed: int = 0, **overrides) -> SimpleS2SForConditionalGeneration:
    torch.manual_seed(seed)
    values = dict(vocab_size=vocab_size, embedding_size=16, hidden_size=16, dropout=0.0)
    config = SimpleS2SConfig(**{**values, **overrides})
    return SimpleS2SForConditionalGeneration(config).eval()


def save_tiny_translator(directory: Path, **overrides) -> Path:
    """An untrained model and the Multi30k test tokenizer, saved together as `simple-s2s-train` would."""
    tokenizer = make_tokenizer("multi30k")
    model = tiny_translation_model(len(tokenizer), **overrides)
    model.generation_config.max_new_tokens = 11  # an untrained model never stops on its own
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
