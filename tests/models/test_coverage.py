"""What is specific to coverage (config.coverage): the loss is See et al.'s and trains the projection, the cached
coverage is the sum of the attention rows and moves with the state, and coverage really changes the output.

The equivalences (cache, padding, batching, beam search) hold with coverage too: `TestEquivalences` in
test_modeling_simple_s2s.py runs them with `coverage` as one of its parameters.
"""

import pytest
import torch
from conftest import ATTENTION_TYPES, SOURCES, VOCAB_SIZE, padded_batch, peaky_model, seeded_generator, tiny_config

from hf_simple_s2s import SimpleS2SForConditionalGeneration
from hf_simple_s2s.models.simple_s2s.modeling_simple_s2s import coverage_loss, coverage_so_far


def coverage_model(attention_type: str, **overrides) -> SimpleS2SForConditionalGeneration:
    return peaky_model(attention_type=attention_type, coverage=True, **overrides)


def decoder_inputs(batch_size=3, tgt_len=6, seed=1):
    generator = seeded_generator(seed)
    return torch.randint(4, VOCAB_SIZE, (batch_size, tgt_len), generator=generator)


@pytest.fixture(params=ATTENTION_TYPES)
def model(request):
    return coverage_model(request.param)


def test_coverage_is_the_only_change_and_it_changes_the_output(model):
    """With its projection zeroed, a coverage model computes exactly what the same weights compute without it."""
    plain = SimpleS2SForConditionalGeneration(tiny_config(attention_type=model.config.attention_type)).eval()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and unexpected == ["model.decoder.attention.coverage_proj.weight"]
    input_ids, attention_mask = padded_batch(SOURCES)
    labels = decoder_inputs(batch_size=4)
    reference = plain(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    with_coverage = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    assert not torch.allclose(with_coverage, reference, atol=1e-3)
    with torch.no_grad():
        model.model.decoder.attention.coverage_proj.weight.zero_()
    torch.testing.assert_close(
        model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits, reference
    )


def test_cached_coverage_is_the_sum_of_the_attention_rows(model):
    input_ids, attention_mask = padded_batch(SOURCES, side="left")
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        labels=decoder_inputs(4),
        output_attentions=True,
        use_cache=True,
    )
    weights = out.cross_attentions[0][:, 0]  # (batch, tgt_len, src_len)
    torch.testing.assert_close(coverage_so_far(out.cache.self_attention_cache)[:, 0], weights.sum(dim=1))


def test_reorder_moves_coverage_with_the_state():
    """Beam search reorders transformers' cache: the attention rows that coverage sums follow the state."""
    model = coverage_model("luong_general")
    out = model(input_ids=torch.tensor([SOURCES[0]] * 3), decoder_input_ids=decoder_inputs(3, 3))
    decoder_part = out.cache.self_attention_cache
    coverage, states = (
        coverage_so_far(decoder_part),
        [layer.recurrent_states[0].clone() for layer in decoder_part.layers],
    )
    beam_idx = torch.tensor([2, 2, 0])
    out.cache.reorder_cache(beam_idx)
    assert torch.equal(coverage_so_far(decoder_part), coverage[beam_idx])
    for layer, state in zip(decoder_part.layers, states):
        assert torch.equal(layer.recurrent_states[0], state[beam_idx])


def test_coverage_loss_is_see_et_al_formula():
    weights = torch.tensor([[[0.7, 0.3, 0.0], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]]])  # (1, tgt 3, src 3)
    # c_1 = 0; c_2 = (.7, .3, 0) -> min sum .6 + .2 + 0 = .8; c_3 = (1.3, .5, .2) -> .1 + .1 + .2 = .4
    torch.testing.assert_close(coverage_loss(weights, torch.tensor([[True, True, True]])), torch.tensor(1.2 / 3))
    torch.testing.assert_close(coverage_loss(weights, torch.tensor([[True, True, False]])), torch.tensor(0.8 / 2))
    prior = torch.tensor([[1.0, 0.0, 0.0]])
    expected = (0.7 + (0.6 + 0.2) + (0.1 + 0.1 + 0.2)) / 3
    torch.testing.assert_close(
        coverage_loss(weights, torch.ones(1, 3, dtype=torch.bool), prior), torch.tensor(expected)
    )


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_coverage_loss_is_added_with_its_weight_and_trains_the_coverage_projection(attention_type):
    input_ids, attention_mask = padded_batch(SOURCES)
    labels = decoder_inputs(4)
    labels[1, 4:] = -100
    plain = coverage_model(attention_type)
    weighted = coverage_model(attention_type, coverage_loss_weight=2.0)
    out = plain(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    expected = out.loss + 2.0 * coverage_loss(out.cross_attentions[0][:, 0], labels != -100)
    weighted_out = weighted(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    torch.testing.assert_close(weighted_out.loss, expected)
    assert weighted_out.cross_attentions is None, "weights were computed for the loss but not asked for"
    weighted_out.loss.backward()
    assert weighted.model.decoder.attention.coverage_proj.weight.grad.abs().sum() > 0


def test_coverage_loss_warns_when_a_training_forward_gets_no_labels(caplog):
    """Seq2SeqTrainer's `label_smoothing_factor` takes the labels away: the coverage loss must not vanish silently
    (a warning, not an error: a forward without labels in training mode is also legitimate, e.g. for a custom loss)."""
    from transformers.utils import logging

    model = coverage_model("bahdanau", coverage_loss_weight=1.0).train()
    input_ids = torch.tensor([[5, 6, 7, 2]])
    logging.get_logger("transformers").addHandler(caplog.handler)
    try:
        with caplog.at_level("WARNING"):
            assert model(input_ids=input_ids, decoder_input_ids=torch.tensor([[1, 8, 9]])).loss is None
    finally:
        logging.get_logger("transformers").removeHandler(caplog.handler)
    assert "no coverage loss is computed" in caplog.text and "label_smoothing" in caplog.text
