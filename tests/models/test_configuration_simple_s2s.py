"""The config: validation at construction, serialisation, and every field doing something in the model."""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import torch
from conftest import tiny_config, tiny_model
from transformers import AutoConfig, GenerationConfig, PreTrainedConfig

import hf_simple_s2s.models.simple_s2s.modeling_simple_s2s as modeling
from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration

# Fields the issue names; any other public field of SimpleS2SConfig must come from PreTrainedConfig.
PUBLIC_FIELDS = [
    "vocab_size",
    "embedding_size",
    "hidden_size",
    "encoder_layers",
    "decoder_layers",
    "bidirectional_encoder",
    "attention_type",
    "dropout",
    "tie_word_embeddings",
    "share_embeddings",
    "initializer_range",
    "label_smoothing",
    "coverage",
    "coverage_loss_weight",
    "scheduled_sampling",
    "scheduled_sampling_k",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "decoder_start_token_id",
]
# transformers itself reads these (generation config, tying, cache), not the modeling file.
READ_BY_TRANSFORMERS = {"bos_token_id", "eos_token_id", "tie_word_embeddings", "is_encoder_decoder"}


def own_fields() -> list[str]:
    inherited = {f.name for f in dataclasses.fields(PreTrainedConfig)}
    return [f.name for f in dataclasses.fields(SimpleS2SConfig) if f.name not in inherited]


def test_declared_fields_are_exactly_the_public_ones():
    assert set(own_fields()) == set(PUBLIC_FIELDS) | {"use_cache"}
    assert SimpleS2SConfig().is_encoder_decoder


@pytest.mark.parametrize("field", sorted((set(own_fields()) | set(PUBLIC_FIELDS)) - READ_BY_TRANSFORMERS))
def test_every_field_is_used_by_the_model(field):
    """The fields transformers reads are checked by behaviour: token ids below, tying in test_modeling."""
    source = Path(inspect.getsourcefile(modeling)).read_text()
    assert re.search(rf"config\.{field}\b", source), f"config.{field} is never read by the modeling code"


def test_token_ids_reach_the_generation_config():
    config = tiny_config(bos_token_id=5, eos_token_id=6, decoder_start_token_id=7, pad_token_id=8)
    generation_config = GenerationConfig.from_model_config(config)
    assert (generation_config.bos_token_id, generation_config.eos_token_id) == (5, 6)
    assert (generation_config.decoder_start_token_id, generation_config.pad_token_id) == (7, 8)
    model = SimpleS2SForConditionalGeneration(config)
    out = model.generate(torch.tensor([[9, 10, 6]]), max_new_tokens=3)
    assert out[0, 0] == 7, "decoding starts with decoder_start_token_id"


@pytest.mark.parametrize(
    "field,value",
    [
        ("embedding_size", 20),
        ("hidden_size", 20),
        ("encoder_layers", 3),
        ("decoder_layers", 3),
        ("bidirectional_encoder", False),
        ("attention_type", "luong_general"),
        ("vocab_size", 50),
    ],
)
def test_size_fields_change_the_architecture(field, value):
    base = {n: p.shape for n, p in tiny_model().named_parameters()}
    changed = {n: p.shape for n, p in tiny_model(**{field: value}).named_parameters()}
    assert base != changed


def test_dropout_is_active_in_training_only():
    model = tiny_model(dropout=0.5)
    input_ids = torch.randint(4, 40, (2, 6))
    labels = torch.randint(4, 40, (2, 4))
    model.train()
    torch.manual_seed(0)
    first = model(input_ids=input_ids, labels=labels).logits
    second = model(input_ids=input_ids, labels=labels).logits
    assert not torch.allclose(first, second)
    model.eval()
    torch.testing.assert_close(
        model(input_ids=input_ids, labels=labels).logits, model(input_ids=input_ids, labels=labels).logits
    )


@pytest.mark.parametrize(
    "field,value",
    [
        ("attention_type", "multihead"),
        ("vocab_size", 0),
        ("embedding_size", 0),
        ("hidden_size", -4),
        ("encoder_layers", 0),
        ("decoder_layers", 0),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("initializer_range", 0.0),
        ("pad_token_id", 40),
        ("bos_token_id", -1),
        ("eos_token_id", 99),
        ("decoder_start_token_id", 40),
        ("coverage_loss_weight", -1.0),
        ("label_smoothing", 1.0),
        ("label_smoothing", -0.1),
        ("scheduled_sampling", "cosine"),
        ("scheduled_sampling_k", 0.0),
    ],
)
def test_bad_values_are_refused_naming_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"`{field}`.*{re.escape(repr(value))}"):
        tiny_config(**{field: value})


def test_coverage_loss_without_coverage_is_refused():
    with pytest.raises(ValueError, match=r"`coverage_loss_weight` is 1.0 but `coverage` is False"):
        tiny_config(coverage_loss_weight=1.0)
    with pytest.raises(ValueError, match=r"`scheduled_sampling_k`.*> 1.*0.5"):
        tiny_config(scheduled_sampling="inverse_sigmoid", scheduled_sampling_k=0.5)


def test_a_bad_config_json_is_refused_when_loaded(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(path.read_text().replace('"attention_type": "bahdanau"', '"attention_type": "bahdanou"'))
    with pytest.raises(ValueError, match="attention_type.*bahdanou"):
        AutoConfig.from_pretrained(tmp_path)


def test_round_trip_through_json(tmp_path):
    config = tiny_config(attention_type="luong_dot", share_embeddings=True, dropout=0.3)
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, SimpleS2SConfig)
    assert {**reloaded.to_dict(), "_name_or_path": ""} == config.to_dict()


def test_standard_aliases():
    config = tiny_config(decoder_layers=3, hidden_size=24)
    assert (config.num_hidden_layers, config.d_model) == (3, 24)
    assert config.encoder_output_size == 48
