"""The page through gradio_client (the client Spaces use), served for a saved model: it returns what `generate()`
returns with the same options, draws the attention of the hypothesis it returned, and refuses bad input with its
message."""

import html
import json

import pytest
import torch
from conftest import peaky_model
from hub_utils import tiny_checkpoint
from serving import served_page

from hf_simple_s2s.inference.translate import load_translator
from hf_simple_s2s.space.app import MAX_BEAMS, MAX_NEW_TOKENS, DecodingOptions, main

gradio_client = pytest.importorskip("gradio_client", reason="the page needs the space extra")

MAX_SOURCE_TOKENS = 20
# Sentences over the tiny vocabulary whose hypotheses end at different steps (eos, then padding) or run to the limit.
SENTENCES = ["w39", "w8 w8 w19 w25 w7", "w5 w9 w14 w22"]
SENTENCE = SENTENCES[0]


@pytest.fixture(scope="module")
def model_dir():
    return tiny_checkpoint()  # an untrained model with large weights: its outputs differ from source to source


@pytest.fixture(scope="module")
def client(model_dir):
    with served_page(model_dir, max_source_tokens=MAX_SOURCE_TOKENS) as url:
        yield gradio_client.Client(url, verbose=False)


def page(client, text, num_beams=1, length_penalty=1.0, no_repeat_ngram_size=0, num_return_sequences=1, max_new=12):
    """The page's answer: (table rows, the hypothesis whose attention is drawn, the plotly figure as a dict)."""
    table, shown, plot = client.predict(
        text, "float32", num_beams, length_penalty, no_repeat_ngram_size, num_return_sequences, max_new,
        api_name="/translate",
    )  # fmt: skip
    assert plot["type"] == "plotly"
    return table["data"], shown, json.loads(plot["plot"])


@pytest.mark.parametrize(
    "options",
    [
        dict(num_beams=1),
        dict(num_beams=1, no_repeat_ngram_size=2),
        dict(num_beams=4, num_return_sequences=3),
        dict(num_beams=5, length_penalty=0.5, no_repeat_ngram_size=2, num_return_sequences=5),
    ],
    ids=["greedy", "greedy-no-repeat", "beam4-return3", "beam5-all-options"],
)
@pytest.mark.parametrize("sentence", SENTENCES)
def test_translations_and_scores_equal_generate(client, model_dir, options, sentence):
    rows, shown, figure = page(client, sentence, max_new=12, **options)

    model, tokenizer = load_translator(str(model_dir))
    inputs = tokenizer(sentence, return_tensors="pt")
    output = model.generate(
        **inputs, max_new_tokens=12, output_scores=True, return_dict_in_generate=True, **options
    )  # fmt: skip
    texts = [text.strip() for text in tokenizer.batch_decode(output.sequences, skip_special_tokens=True)]
    if options["num_beams"] > 1:
        expected_scores = output.sequences_scores
    else:  # the sum of the tokens' log-probabilities, by teacher forcing
        logits = model(**inputs, decoder_input_ids=output.sequences[:, :-1]).logits
        expected_scores = logits.log_softmax(-1).gather(-1, output.sequences[:, 1:, None]).sum((1, 2))
    assert [row[0] for row in rows] == list(range(1, len(texts) + 1))
    assert [row[1] for row in rows] == texts
    torch.testing.assert_close(torch.tensor([row[2] for row in rows]), expected_scores.float(), atol=1e-4, rtol=0)

    # The heatmap drawn is the first hypothesis's; the page offers each.
    assert shown["value"] == 1 and [value for _, value in shown["choices"]] == list(range(1, len(texts) + 1))
    source_tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    for rank, sequence in enumerate(output.sequences, start=1):
        if rank > 1:
            figure = json.loads(client.predict(rank, api_name="/attention")["plot"])
        check_heatmap(figure, tokenizer.convert_ids_to_tokens(sequence[1:]), source_tokens, tokenizer.eos_token)


def check_heatmap(figure: dict, output_tokens: list[str], source_tokens: list[str], eos_token: str) -> None:
    """A row per output token up to its first eos, a column per source token, the argmax of each row boxed."""
    if eos_token in output_tokens:
        output_tokens = output_tokens[: output_tokens.index(eos_token) + 1]
    heatmap, alignment = figure["data"]
    assert figure["layout"]["yaxis"]["ticktext"] == [html.escape(token) for token in output_tokens]  # '&lt;/s&gt;'
    assert figure["layout"]["xaxis"]["ticktext"] == [html.escape(token) for token in source_tokens]
    assert len(heatmap["z"]) == len(output_tokens)
    assert all(abs(sum(row) - 1) < 1e-4 for row in heatmap["z"])  # each row: one step's attention distribution
    argmax = [max(range(len(row)), key=row.__getitem__) for row in heatmap["z"]]
    assert list(alignment["x"]) == argmax and list(alignment["y"]) == list(range(len(output_tokens)))


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("   ", {}, "the source sentence is empty"),
        ("w5 " * 30, {}, f"has 31 tokens, this page translates at most {MAX_SOURCE_TOKENS}"),
        (SENTENCE, dict(num_beams=2, num_return_sequences=3), "num_return_sequences must be between 1 and the beam"),
        (SENTENCE, dict(num_beams=MAX_BEAMS + 1), f"greater than maximum value {MAX_BEAMS}"),  # the slider's own
        (SENTENCE, dict(max_new=0), "less than minimum value 1"),
        (SENTENCE, dict(num_beams=2.5), "num_beams must be a whole number, got 2.5"),
    ],
    ids=["empty", "too-long", "more-hypotheses-than-beams", "too-many-beams", "no-new-tokens", "fractional-beams"],
)
def test_bad_input_gets_the_pages_one_line_message(client, text, options, message):
    with pytest.raises(gradio_client.exceptions.AppError) as error:
        page(client, text, **options)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(num_beams=0), f"num_beams must be between 1 and {MAX_BEAMS}, got 0"),
        (dict(num_beams=MAX_BEAMS + 1), f"num_beams must be between 1 and {MAX_BEAMS}, got {MAX_BEAMS + 1}"),
        (dict(max_new_tokens=MAX_NEW_TOKENS + 1), f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}"),
        (dict(no_repeat_ngram_size=-1), "no_repeat_ngram_size must be >= 0, got -1"),
    ],
)
def test_decoding_options_outside_the_sliders_are_refused_in_python_too(options, message):
    with pytest.raises(ValueError, match=message):
        DecodingOptions(**options)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max_source_tokens", "0"], "max_source_tokens must be >= 1, got 0"),
        (["--examples", "/nonexistent/examples.txt"], "cannot read --examples /nonexistent/examples.txt"),
    ],
)
def test_bad_command_lines_get_one_line_errors(model_dir, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main([str(model_dir), *args])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]  # after the weights' loading bar, where there is one
    assert error.startswith(f"app.py: error: {message}")


def test_an_unknown_model_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing-model")])
    assert capsys.readouterr().err.startswith(f"app.py: error: cannot load model '{tmp_path / 'missing-model'}'")


def test_every_model_variant_on_the_page_decodes_as_itself(model_dir):
    """The page's model choice: an int8 copy and an ensemble are entries beside the model, each decoding as its own
    generate() does (the attention of an ensemble is its members' mean)."""
    from hf_simple_s2s.inference.ensemble import SimpleS2SEnsemble
    from hf_simple_s2s.inference.quantize import quantize_int8
    from hf_simple_s2s.space.app import build_demo

    model, tokenizer = load_translator(str(model_dir))
    other = peaky_model(seed=1)
    variants = {"float32": model, "int8": quantize_int8(model), "ensemble": SimpleS2SEnsemble([model, other])}
    demo = build_demo(variants, tokenizer, max_source_tokens=MAX_SOURCE_TOKENS)
    _, url, _ = demo.launch(prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = gradio_client.Client(url, verbose=False)
        inputs = tokenizer(SENTENCES[1], return_tensors="pt")
        texts = {}
        for label, variant in variants.items():
            table, _, plot = client.predict(SENTENCES[1], label, 3, 1.0, 0, 1, 12, api_name="/translate")
            expected = variant.generate(**inputs, num_beams=3, max_new_tokens=12)
            texts[label] = table["data"][0][1]
            assert texts[label] == tokenizer.decode(expected[0], skip_special_tokens=True).strip()
            figure = json.loads(plot["plot"])
            check_heatmap(
                figure,
                tokenizer.convert_ids_to_tokens(expected[0][1:]),
                tokenizer.convert_ids_to_tokens(inputs["input_ids"][0]),
                tokenizer.eos_token,
            )
        assert texts["ensemble"] != texts["float32"]  # the second member changes the choice: the page used it
    finally:
        demo.close()


def test_int8_of_an_ensemble_is_refused_in_one_line(model_dir, capsys):
    with pytest.raises(SystemExit):
        main([f"{model_dir},{model_dir}", "--int8"])
    assert capsys.readouterr().err.splitlines()[-1].startswith("app.py: error: --int8: `model` must be a")
