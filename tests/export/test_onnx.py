"""Export: the exported encoder and step compute what the model computes, and the ONNX graphs run by onnxruntime
decode exactly as `generate()` does (greedy and beam search), for batch sizes, source lengths and padding sides other
than those used at export."""

import pytest
import torch
from conftest import padded_batch, tiny_model

from hf_simple_s2s.export.onnx import DecoderStep, ExportedEncoder

SOURCES = [[5, 9, 14, 22, 7, 31, 17, 2], [31, 12, 2], [8, 8, 19, 25, 2], [4, 2], [6, 7, 8, 9, 10, 2]]


@torch.no_grad()
def test_exported_encoder_and_decoder_step_equal_the_models_first_step():
    model = tiny_model(attention_type="bahdanau", coverage=True, initializer_range=0.5)
    input_ids, attention_mask = padded_batch(SOURCES[:3], side="left")
    start = torch.full((3, 1), 1)
    out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start, output_attentions=True)
    hidden, keys, state = ExportedEncoder(model)(input_ids, attention_mask)
    log_probs, new_state, new_coverage = DecoderStep(model)(
        start, hidden, keys, attention_mask, state, torch.zeros(attention_mask.shape)
    )
    torch.testing.assert_close(log_probs, out.logits[:, -1].log_softmax(-1))
    decoder_part = out.cache.self_attention_cache
    torch.testing.assert_close(new_state, torch.stack([layer.recurrent_states[0] for layer in decoder_part.layers]))
    torch.testing.assert_close(new_coverage, out.cross_attentions[0][:, 0, 0])


@pytest.mark.parametrize(
    "attention_type,coverage", [("bahdanau", False), ("luong_dot", True), ("luong_general", False)]
)
def test_onnxruntime_decoding_equals_generate(tmp_path, attention_type, coverage):
    pytest.importorskip("onnxruntime")
    from hf_simple_s2s.export.onnx import OnnxTranslator, export_onnx

    model = tiny_model(attention_type=attention_type, coverage=coverage, initializer_range=0.5)
    translator = OnnxTranslator(export_onnx(model, tmp_path))
    for rows in (SOURCES, SOURCES[1:2], [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 2]]):
        input_ids, attention_mask = padded_batch(rows)
        for num_beams in (1, 3):
            expected = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=12, num_beams=num_beams)
            got = translator.generate(input_ids, attention_mask, max_new_tokens=12, num_beams=num_beams)
            assert got.tolist() == expected.tolist(), f"num_beams={num_beams}, {len(rows)} rows"


def test_translator_decodes_left_padding_and_refuses_bad_beams(tmp_path):
    pytest.importorskip("onnxruntime")
    from hf_simple_s2s.export.onnx import OnnxTranslator, export_onnx

    model = tiny_model(dropout=0.2, initializer_range=0.5).train()
    translator = OnnxTranslator(export_onnx(model, tmp_path))
    assert model.training, "export_onnx exports in eval mode and gives the model back as it was"
    model.eval()
    input_ids, attention_mask = padded_batch(SOURCES, side="left")
    expected = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=12)
    assert translator.generate(input_ids, attention_mask, max_new_tokens=12).tolist() == expected.tolist()
    with pytest.raises(ValueError, match="`num_beams` must be an integer >= 1, got 0"):
        translator.generate(*padded_batch(SOURCES[:2]), num_beams=0)
