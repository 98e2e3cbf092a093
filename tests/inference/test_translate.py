"""`translate()` and the `simple-s2s-translate` command on a saved folder: batched equals one by one, all inputs."""

import io

import pytest
from main_job_helpers import GERMAN, save_tiny_translator

from hf_simple_s2s.inference.translate import load_translator, main, translate

SENTENCES = GERMAN[:5]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_translator(tmp_path_factory.mktemp("translator"))


@pytest.fixture(scope="module")
def translator(model_dir):
    return load_translator(str(model_dir))


@pytest.mark.parametrize("num_beams", [1, 3])
def test_batched_translation_equals_one_by_one(translator, num_beams):
    model, tokenizer = translator
    batched = translate(SENTENCES, model, tokenizer, batch_size=4, num_beams=num_beams)
    one_by_one = [translate([s], model, tokenizer, num_beams=num_beams)[0] for s in SENTENCES]
    assert batched == one_by_one
    assert len(set(batched)) > 1  # the sentences differ, so must (most of) their translations


def test_the_saved_generation_config_is_used_unless_overridden(translator):
    model, tokenizer = translator
    assert model.generation_config.max_length == 12  # from generation_config.json
    inputs = tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)

    def decoded(sequences):
        return [text.strip() for text in tokenizer.batch_decode(sequences, skip_special_tokens=True)]

    default = translate(SENTENCES[:2], model, tokenizer)
    assert default == decoded(model.generate(**inputs, max_length=12))
    longer = translate(SENTENCES[:2], model, tokenizer, max_length=20)
    assert longer == decoded(model.generate(**inputs, max_length=20))
    assert any(len(long) > len(short) for long, short in zip(longer, default, strict=True))


def test_command_line_sentences_file_and_stdin_agree(model_dir, translator, tmp_path, capsys, monkeypatch):
    expected = "\n".join(translate(SENTENCES[:3], *translator, num_beams=2)) + "\n"
    main([str(model_dir), *SENTENCES[:3], "--num_beams", "2", "--batch_size", "2"])
    assert capsys.readouterr().out == expected

    source_file = tmp_path / "in.de"
    source_file.write_text("\n".join(SENTENCES[:3]) + "\n", encoding="utf-8")
    main([str(model_dir), "--file", str(source_file), "--num_beams", "2"])
    assert capsys.readouterr().out == expected

    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(SENTENCES[:3]) + "\n"))
    main([str(model_dir), "--num_beams", "2"])
    assert capsys.readouterr().out == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--file", "/nonexistent/in.de"], "cannot read --file /nonexistent/in.de"),
        (["--batch_size", "0", "x"], "--batch_size must be >= 1, got 0"),
        (["x", "--file", "y"], "pass sentences or --file, not both"),
    ],
)
def test_bad_command_lines_get_one_line_errors(model_dir, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main([str(model_dir), *args])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"simple-s2s-translate: error: {message}") and error.count("\n") == 1


def test_unknown_model_folder_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing-model"), "Hallo"])
    error = capsys.readouterr().err
    assert error.startswith("simple-s2s-translate: error: cannot load model") and "missing-model" in error
    assert error.count("\n") == 1


def test_a_single_string_is_refused(translator):
    with pytest.raises(ValueError, match="a list of sentences"):
        translate("Ein Hund.", *translator)
