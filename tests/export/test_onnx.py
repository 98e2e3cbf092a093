"""Export: the exported encoder and step compute what the model computes, and `OnnxSimpleS2S` (the graphs in
onnxruntime under transformers' `generate()`) returns the model's own `generate()` tokens for every search and
option, at batch sizes, source lengths and padding sides other than those used at export."""

import subprocess
import sys

import pytest
import torch
from conftest import VOCAB_SIZE, padded_batch, tiny_model

from hf_simple_s2s.export.onnx import DecoderStep, ExportedEncoder

pytest.importorskip("onnxruntime")

# Export traces a batch of 2 sources of 4 tokens; these are 5, 1 and 1 sources of up to 8, 3 and 13 tokens.
SOURCES = [[5, 9, 14, 22, 7, 31, 17, 2], [31, 12, 2], [8, 8, 19, 25, 2], [4, 2], [6, 7, 8, 9, 10, 2]]
BATCHES = {
    "right-padded": padded_batch(SOURCES),
    "left-padded": padded_batch(SOURCES, side="left"),
    "one source": padded_batch(SOURCES[1:2]),
    "long source": padded_batch([list(range(5, 17)) + [2]]),
}
GENERATE_OPTIONS = {
    "greedy": {},
    "beam 3": dict(num_beams=3),
    "beam options": dict(
        num_beams=3, num_return_sequences=2, length_penalty=0.6, no_repeat_ngram_size=2, early_stopping=True
    ),
    "greedy options": dict(repetition_penalty=1.3, min_new_tokens=4, bad_words_ids=[[7]]),
    "sampling": dict(do_sample=True, top_k=10, top_p=0.9, temperature=1.3, num_return_sequences=2),
    "beam sampling": dict(do_sample=True, num_beams=2, temperature=0.8),
    "no cache": dict(use_cache=False),
    "scores": dict(num_beams=2, output_scores=True, return_dict_in_generate=True),
}
MODELS = [("bahdanau", False), ("bahdanau", True), ("luong_dot", False), ("luong_general", True)]


@pytest.fixture(scope="module", params=MODELS, ids=lambda p: f"{p[0]}{'-coverage' if p[1] else ''}")
def exported(request, tmp_path_factory):
    """A tiny model with peaked outputs (float noise cannot flip a choice) and its `OnnxSimpleS2S`."""
    from hf_simple_s2s.export.onnx import OnnxSimpleS2S, export_onnx

    attention_type, coverage = request.param
    model = tiny_model(attention_type=attention_type, coverage=coverage, initializer_range=0.5)
    with torch.no_grad():
        model.lm_head.bias[model.config.eos_token_id] += 0.5  # eos likely enough that rows end at different steps
    return model, OnnxSimpleS2S.from_pretrained(export_onnx(model, tmp_path_factory.mktemp("onnx")))


@torch.no_grad()
def test_exported_encoder_and_decoder_step_equal_the_models_first_step():
    model = tiny_model(attention_type="bahdanau", coverage=True, initializer_range=0.5)
    input_ids, attention_mask = padded_batch(SOURCES[:3], side="left")
    start = torch.full((3, 1), 1)
    out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start, output_attentions=True)
    hidden, keys, state = ExportedEncoder(model)(input_ids, attention_mask)
    logits, new_state, weights = DecoderStep(model)(
        start, hidden, keys, attention_mask, state, torch.zeros(attention_mask.shape)
    )
    torch.testing.assert_close(logits, out.logits[:, -1])
    decoder_part = out.cache.self_attention_cache
    torch.testing.assert_close(new_state, torch.stack([layer.recurrent_states[0] for layer in decoder_part.layers]))
    torch.testing.assert_close(weights, out.cross_attentions[0][:, 0, 0])


@pytest.mark.parametrize("options", GENERATE_OPTIONS.values(), ids=GENERATE_OPTIONS.keys())
@pytest.mark.parametrize("batch", BATCHES.values(), ids=BATCHES.keys())
def test_onnx_generate_equals_generate(exported, batch, options):
    """Sampling draws from torch's generator inside `generate()`, from logits equal to float rounding: the same seed
    gives the same tokens."""
    model, onnx_model = exported
    input_ids, attention_mask = batch
    results = []
    for generator in (model, onnx_model):
        torch.manual_seed(0)
        results.append(generator.generate(input_ids, attention_mask=attention_mask, max_new_tokens=12, **options))
    expected, got = results
    if options.get("return_dict_in_generate"):
        torch.testing.assert_close(got.sequences_scores, expected.sequences_scores)
        torch.testing.assert_close(torch.stack(got.scores), torch.stack(expected.scores))
        expected, got = expected.sequences, got.sequences
    assert got.tolist() == expected.tolist()


def test_rows_end_at_different_steps(exported):
    """The equalities above cover eos and pad handling only if some rows end before others: make sure they do."""
    model, onnx_model = exported
    input_ids, attention_mask = BATCHES["right-padded"]
    sequences = onnx_model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=12)
    is_eos = sequences == model.config.eos_token_id
    ends = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), sequences.shape[1])
    assert len(set(ends.tolist())) > 1, sequences


def test_a_forced_decoder_prefix_is_fed_as_generate_feeds_it(exported):
    model, onnx_model = exported
    input_ids, attention_mask = BATCHES["left-padded"]
    prefix = torch.tensor([[1, 9, 12]]).expand(len(input_ids), -1)
    kwargs = dict(attention_mask=attention_mask, decoder_input_ids=prefix, max_new_tokens=6)
    assert onnx_model.generate(input_ids, **kwargs).tolist() == model.generate(input_ids, **kwargs).tolist()


def test_the_saved_generation_config_is_the_default(tmp_path):
    from hf_simple_s2s.export.onnx import OnnxSimpleS2S, export_onnx

    model = tiny_model(attention_type="luong_general", initializer_range=0.5)
    model.generation_config.num_beams, model.generation_config.max_new_tokens = 3, 7
    onnx_model = OnnxSimpleS2S.from_pretrained(export_onnx(model, tmp_path))
    input_ids, attention_mask = BATCHES["right-padded"]
    expected = model.generate(input_ids, attention_mask=attention_mask)
    assert onnx_model.generate(input_ids, attention_mask=attention_mask).tolist() == expected.tolist()


def test_export_leaves_the_model_in_its_mode(tmp_path):
    from hf_simple_s2s.export.onnx import OnnxSimpleS2S, export_onnx

    model = tiny_model(dropout=0.2, initializer_range=0.5).train()
    onnx_model = OnnxSimpleS2S.from_pretrained(export_onnx(model, tmp_path))
    assert model.training, "export_onnx exports in eval mode and gives the model back as it was"
    input_ids, attention_mask = BATCHES["left-padded"]
    expected = model.eval().generate(input_ids, attention_mask=attention_mask, max_new_tokens=12)
    got = onnx_model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=12)
    assert got.tolist() == expected.tolist()


BAD_INPUTS = {
    "empty batch": (torch.zeros((0, 3), dtype=torch.long), "at least one row and one token"),
    "zero-length rows": (torch.zeros((2, 0), dtype=torch.long), "at least one row and one token"),
    "id -1": (torch.tensor([[5, -1, 2]]), "token id -1, outside the vocabulary"),
    "id vocab_size": (torch.tensor([[5, VOCAB_SIZE, 2]]), f"token id {VOCAB_SIZE}, outside the vocabulary"),
    "float ids": (torch.tensor([[5.0, 6.5, 2.0]]), "dtype torch.int64 or torch.int32, got torch.float32"),
}


@pytest.mark.parametrize("input_ids,message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_ids_are_a_value_error(exported, input_ids, message):
    _, onnx_model = exported
    with pytest.raises(ValueError, match=message):
        onnx_model.generate(input_ids, attention_mask=torch.ones(input_ids.shape, dtype=torch.long))


def test_bad_decoder_input_ids_and_mask_are_a_value_error(exported):
    _, onnx_model = exported
    input_ids, attention_mask = BATCHES["right-padded"]
    with pytest.raises(ValueError, match="`attention_mask` has shape"):
        onnx_model.generate(input_ids, attention_mask=attention_mask[:, :-1])
    with pytest.raises(ValueError, match="`decoder_input_ids` holds token id 99"):
        onnx_model.generate(input_ids, attention_mask=attention_mask, decoder_input_ids=torch.full((5, 2), 99))


def test_bad_inputs_never_abort_the_process(tmp_path):
    """onnxruntime aborts the process (rc 134) on an empty axis: the checks must come first, in a fresh process too."""
    from hf_simple_s2s.export.onnx import export_onnx

    export_onnx(tiny_model(), tmp_path)
    script = f"""
import torch
from hf_simple_s2s.export.onnx import OnnxSimpleS2S
model = OnnxSimpleS2S.from_pretrained({str(tmp_path)!r})
for input_ids in (torch.zeros((0, 3), dtype=torch.long), torch.zeros((2, 0), dtype=torch.long), torch.tensor([[-1]])):
    try:
        model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=3)
    except ValueError as error:
        print("ValueError:", error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("ValueError:") == 3, result.stdout
