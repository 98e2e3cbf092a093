"""int8 decoding (`quantize_int8`): int8 GRUs and linear layers close to float32, the same tokens on a peaky model,
every generate() option, the CLI's `--quantize int8` and the pipeline over an int8 model."""

import pytest
import torch
from conftest import GEN, SOURCES, padded_batch, peaky_model
from main_job_helpers import GERMAN, save_tiny_translator
from transformers import pipeline

from hf_simple_s2s import PIPELINE_TASK
from hf_simple_s2s.inference.quantize import Int8GRU, quantize_int8, quantize_model
from hf_simple_s2s.inference.translate import load_translator, main, translate
from hf_simple_s2s.models.simple_s2s.modeling_simple_s2s import SimpleS2SGRU


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_int8_gru_is_close_to_the_float_gru(bidirectional):
    torch.manual_seed(0)
    gru = SimpleS2SGRU(24, 32, num_layers=2, bidirectional=bidirectional)
    for parameter in gru.parameters():
        torch.nn.init.uniform_(parameter, -0.3, 0.3)
    int8_gru = Int8GRU(gru)
    inputs, state = torch.randn(5, 7, 24), torch.randn(5, 32)
    layer_one_inputs = torch.randn(5, 7, 64 if bidirectional else 32)
    for layer, layer_inputs in ((0, inputs), (1, layer_one_inputs)):
        for reverse in (False, True) if bidirectional else (False,):
            expected = gru.run(layer, layer_inputs, state, reverse=reverse)
            actual = int8_gru.run(layer, layer_inputs, state, reverse=reverse)
            assert actual.shape == expected.shape
            assert 0 < relative_error(actual, expected) < 0.02  # int8, not float: close, never equal
        expected = gru.cell(layer, layer_inputs[:, 0], state)
        actual = int8_gru.cell(layer, layer_inputs[:, 0], state)
        assert 0 < relative_error(actual, expected) < 0.02


def test_quantize_int8_returns_an_int8_copy(attention_type):
    model = peaky_model(attention_type=attention_type)
    before = {name: p.clone() for name, p in model.state_dict().items()}
    quantized = quantize_int8(model)
    assert isinstance(quantized.model.encoder.gru, Int8GRU) and isinstance(quantized.model.decoder.gru, Int8GRU)
    float_layers = {name for name, m in quantized.named_modules() if type(m) is torch.nn.Linear}
    assert float_layers == ({"model.decoder.attention.energy"} if attention_type == "bahdanau" else set())
    # The model passed in is left as it was.
    assert isinstance(model.model.decoder.gru, SimpleS2SGRU) and type(model.lm_head) is torch.nn.Linear
    assert all(torch.equal(before[name], p) for name, p in model.state_dict().items())


def test_int8_logits_are_close_and_pick_the_same_tokens_on_a_peaky_model(attention_type):
    model = peaky_model(attention_type=attention_type)
    quantized = quantize_int8(model)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, model.config.vocab_size, (32, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    sequences = model.generate(input_ids, attention_mask=attention_mask, num_beams=1, **GEN)
    with torch.no_grad():  # both fed float32's greedy output: next-token choices compared position by position
        expected = model(input_ids, attention_mask=attention_mask, decoder_input_ids=sequences).logits
        actual = quantized(input_ids, attention_mask=attention_mask, decoder_input_ids=sequences).logits
    assert 0 < relative_error(actual, expected) < 0.03
    assert (actual.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.95
    for num_beams in (1, 3):
        expected_ids = model.generate(input_ids, attention_mask=attention_mask, num_beams=num_beams, **GEN)
        actual_ids = quantized.generate(input_ids, attention_mask=attention_mask, num_beams=num_beams, **GEN)
        assert (actual_ids == expected_ids).all(dim=1).float().mean() >= 0.5  # whole rows equal


@pytest.mark.parametrize(
    "options",
    [
        dict(num_beams=3, num_return_sequences=2),
        dict(do_sample=True, top_k=5),
        dict(num_beams=1, output_attentions=True, return_dict_in_generate=True),
    ],
)
def test_int8_model_takes_every_generate_option(options):
    """The int8 copy decodes through the same generate() (its tokens may differ): same outputs, same shapes."""
    model = peaky_model(coverage=True)
    quantized = quantize_int8(model)
    input_ids, attention_mask = padded_batch(SOURCES, side="left")
    expected = model.generate(input_ids, attention_mask=attention_mask, **options, **GEN)
    actual = quantized.generate(input_ids, attention_mask=attention_mask, **options, **GEN)
    if options.get("return_dict_in_generate"):
        assert [a.shape for a in actual.cross_attentions[0]] == [e.shape for e in expected.cross_attentions[0]]
        torch.testing.assert_close(actual.cross_attentions[0][0].sum(-1), torch.ones(len(SOURCES), 1, 1))
        actual, expected = actual.sequences, expected.sequences
    assert actual.shape == expected.shape


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_translator(tmp_path_factory.mktemp("translator"))


def test_command_line_and_pipeline_quantize_int8(model_dir, capsys):
    model, tokenizer = load_translator(str(model_dir))
    expected = translate(GERMAN[:3], quantize_int8(model), tokenizer, num_beams=2)
    main([str(model_dir), *GERMAN[:3], "--num_beams", "2", "--quantize", "int8"])
    assert capsys.readouterr().out == "\n".join(expected) + "\n"

    # The pipeline takes the int8 copy as its model (pipeline.py itself travels to the Hub: it imports no package code).
    translator = pipeline(PIPELINE_TASK, model=quantize_int8(model), tokenizer=tokenizer)
    outputs = translator(GERMAN[:3], num_beams=2, max_length=12)
    assert [output["translation_text"].strip() for output in outputs] == expected


def test_bad_quantize_values_are_refused(model_dir, capsys):
    model = peaky_model()
    with pytest.raises(ValueError, match="`quantize` must be one of \\('int8',\\) or None, got 'int4'"):
        quantize_model(model, "int4")
    with pytest.raises(ValueError, match="must be in torch.float32 to be quantized, got dtype torch.bfloat16"):
        quantize_int8(peaky_model().to(torch.bfloat16))
    with pytest.raises(ValueError, match="must be a SimpleS2SForConditionalGeneration, got GRU"):
        quantize_int8(torch.nn.GRU(4, 4))
    with pytest.raises(SystemExit):
        main([str(model_dir), "Ein Hund.", "--quantize", "int4"])
    assert "argument --quantize: invalid choice: 'int4'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(model_dir), "Ein Hund.", "--quantize", "int8", "--device", "meta"])
    last_line = capsys.readouterr().err.splitlines()[-1]  # after the loading progress bar
    assert last_line == "simple-s2s-translate: error: `model` must be on the CPU for int8 decoding, got device meta"
