"""Export: the padded encoder equals the packed one, and the ONNX graphs run by onnxruntime decode exactly as
`generate()` does (greedy and beam search), for batch sizes and source lengths other than those used at export."""

import pytest
import torch
from conftest import padded_batch, tiny_model

from hf_simple_s2s.export import DecoderStep, PaddedEncoder

SOURCES = [[5, 9, 14, 22, 7, 31, 17, 2], [31, 12, 2], [8, 8, 19, 25, 2], [4, 2], [6, 7, 8, 9, 10, 2]]


@pytest.mark.parametrize(
    "overrides",
    [
        dict(attention_type="bahdanau"),
        dict(attention_type="luong_dot", encoder_layers=1),
        dict(attention_type="luong_general", bidirectional_encoder=False),
        dict(attention_type="luong_general", coverage=True, encoder_layers=3),
    ],
)
@torch.no_grad()
def test_padded_encoder_equals_the_packed_encoder(overrides):
    model = tiny_model(initializer_range=0.5, **overrides)
    input_ids, attention_mask = padded_batch(SOURCES, side="right")
    reference = model.get_encoder()(input_ids, attention_mask=attention_mask)
    hidden, keys, state = PaddedEncoder(model)(input_ids, attention_mask)
    torch.testing.assert_close(hidden, reference.last_hidden_state)
    torch.testing.assert_close(state, model.get_decoder().initial_state(reference.final_hidden_state))
    torch.testing.assert_close(keys, model.get_decoder().attention.compute_keys(reference.last_hidden_state))


@torch.no_grad()
def test_decoder_step_equals_the_models_cached_step():
    model = tiny_model(attention_type="bahdanau", coverage=True, initializer_range=0.5)
    input_ids, attention_mask = padded_batch(SOURCES[:3])
    start = torch.full((3, 1), 1)
    out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start)
    hidden, keys, state = PaddedEncoder(model)(input_ids, attention_mask)
    log_probs, new_state, new_coverage = DecoderStep(model)(
        start, hidden, keys, attention_mask, state, torch.zeros(attention_mask.shape)
    )
    torch.testing.assert_close(log_probs, out.logits[:, -1].log_softmax(-1))
    torch.testing.assert_close(new_state, out.cache.decoder_state)
    torch.testing.assert_close(new_coverage, out.cache.coverage)


@pytest.mark.parametrize(
    "attention_type,coverage", [("bahdanau", False), ("luong_dot", True), ("luong_general", False)]
)
def test_onnxruntime_decoding_equals_generate(tmp_path, attention_type, coverage):
    pytest.importorskip("onnxruntime")
    from hf_simple_s2s.export import OnnxTranslator, export_onnx

    model = tiny_model(attention_type=attention_type, coverage=coverage, initializer_range=0.5)
    translator = OnnxTranslator(export_onnx(model, tmp_path))
    for rows in (SOURCES, SOURCES[1:2], [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 2]]):
        input_ids, attention_mask = padded_batch(rows)
        for num_beams in (1, 3):
            expected = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=12, num_beams=num_beams)
            got = translator.generate(input_ids, attention_mask, max_new_tokens=12, num_beams=num_beams)
            assert got.tolist() == expected.tolist(), f"num_beams={num_beams}, {len(rows)} rows"


def test_translator_refuses_left_padding_and_bad_beams(tmp_path):
    pytest.importorskip("onnxruntime")
    from hf_simple_s2s.export import OnnxTranslator, export_onnx

    model = tiny_model(dropout=0.2).train()
    translator = OnnxTranslator(export_onnx(model, tmp_path))
    assert model.training, "export_onnx exports in eval mode and gives the model back as it was"
    input_ids, attention_mask = padded_batch(SOURCES[:2], side="left")
    with pytest.raises(ValueError, match="right-padded"):
        translator.generate(input_ids, attention_mask)
    with pytest.raises(ValueError, match="`num_beams` must be an integer >= 1, got 0"):
        translator.generate(*padded_batch(SOURCES[:2]), num_beams=0)
