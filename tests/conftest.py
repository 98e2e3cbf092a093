"""Shared fixtures: tiny configs and models, and the offline Hub environment every test runs in."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration  # noqa: E402

ATTENTION_TYPES = ["bahdanau", "luong_dot", "luong_general"]
VOCAB_SIZE = 40


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


def tiny_model(seed: int = 0, **overrides) -> SimpleS2SForConditionalGeneration:
    torch.manual_seed(seed)
    return SimpleS2SForConditionalGeneration(tiny_config(**overrides)).eval()


@pytest.fixture(params=ATTENTION_TYPES)
def attention_type(request) -> str:
    return request.param


@pytest.fixture
def model(attention_type) -> SimpleS2SForConditionalGeneration:
    return tiny_model(attention_type=attention_type)
