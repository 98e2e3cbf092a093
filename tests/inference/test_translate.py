"""`translate()` and the `simple-s2s-translate` command on a saved folder: batched equals one by one, all inputs;
N lines in give N lines out whatever the bytes, and every mistake is one line."""

import contextlib
import io
import json
import shutil
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from main_job_helpers import GERMAN, save_tiny_translator
from safetensors.torch import load_file, save_file

from hf_simple_s2s.inference.translate import FALLBACK_MAX_SOURCE_LENGTH, load_translator, main, translate

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
    assert model.generation_config.max_new_tokens == 11  # from generation_config.json
    inputs = tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)

    def decoded(sequences):
        return [text.strip() for text in tokenizer.batch_decode(sequences, skip_special_tokens=True)]

    default = translate(SENTENCES[:2], model, tokenizer)
    assert default == decoded(model.generate(**inputs, max_new_tokens=11))
    longer = translate(SENTENCES[:2], model, tokenizer, max_new_tokens=19)
    assert longer == decoded(model.generate(**inputs, max_new_tokens=19))
    assert any(len(long) > len(short) for long, short in zip(longer, default, strict=True))


def test_command_line_sentences_file_and_stdin_agree(model_dir, translator, tmp_path, capsys, monkeypatch):
    expected = "\n".join(translate(SENTENCES[:3], *translator, num_beams=2)) + "\n"
    main([str(model_dir), *SENTENCES[:3], "--num_beams", "2", "--batch_size", "2"])
    assert capsys.readouterr().out == expected

    source_file = tmp_path / "in.de"
    source_file.write_text("\n".join(SENTENCES[:3]) + "\n", encoding="utf-8")
    main([str(model_dir), "--file", str(source_file), "--num_beams", "2"])
    assert capsys.readouterr().out == expected

    monkeypatch.setattr("sys.stdin", stdin(("\n".join(SENTENCES[:3]) + "\n").encode()))
    main([str(model_dir), "--num_beams", "2"])
    assert capsys.readouterr().out == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--file", "/nonexistent/in.de"], "cannot read --file /nonexistent/in.de"),
        (["--batch_size", "0", "x"], "--batch_size must be >= 1, got 0"),
        (["x", "--file", "y"], "pass sentences or --file, not both"),
        (["--max_new_tokens", "0", "x"], "--max_new_tokens must be >= 1, got 0"),
        (["--max_new_tokens", "-3", "x"], "--max_new_tokens must be >= 1, got -3"),
        (["--num_beams", "0", "x"], "--num_beams must be >= 1, got 0"),
        (["--max_source_length", "0", "x"], "--max_source_length must be >= 1, got 0"),
        (["--device", "tpu9", "x"], "--device tpu9: "),
        (["--stream", "--num_beams", "3", "x"], "--stream decodes greedily; it cannot be used with --num_beams 3"),
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


def stdin(data: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


def run_cli(args: list[str], data: bytes = b"") -> tuple[str, str]:
    """stdout and stderr of `simple-s2s-translate ARGS < data`, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch("sys.stdin", stdin(data)), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(args)
    return out.getvalue(), err.getvalue()


# Every character `str.splitlines()` splits at but a line of a text file does not end at ("\r" alone included).
LINE_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r"]


@pytest.mark.parametrize("line_break", LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
def test_n_lines_in_give_n_lines_out_paired_with_their_sources(model_dir, translator, line_break):
    lines = [SENTENCES[0], f"{SENTENCES[1]}{line_break}{SENTENCES[2]}", SENTENCES[3]]
    out, _ = run_cli([str(model_dir), "--num_beams", "1"], "\n".join(lines).encode() + b"\r\n")
    assert out.count("\n") == 3
    assert out.splitlines() == translate(lines, *translator, num_beams=1)
    assert out.splitlines()[2] == translate([SENTENCES[3]], *translator, num_beams=1)[0]
    # inside a line, the break is a space
    assert out.splitlines()[1] == translate([f"{SENTENCES[1]} {SENTENCES[2]}"], *translator, num_beams=1)[0]


def test_invalid_utf8_is_translated_with_replacement_characters_and_a_warning(model_dir, translator, tmp_path):
    data = f"{SENTENCES[0]}\n".encode() + b"Ein \xff\xfeHund \xc3\n" + f"{SENTENCES[2]}\n".encode()
    expected = translate([SENTENCES[0], "Ein \ufffd\ufffdHund \ufffd", SENTENCES[2]], *translator)
    out, err = run_cli([str(model_dir)], data)
    assert out.splitlines() == expected
    assert (
        err
        == "simple-s2s-translate: warning: stdin: line 2 not valid UTF-8; the invalid bytes are translated as U+FFFD\n"
    )
    source_file = tmp_path / "in.de"
    source_file.write_bytes(data)
    out, err = run_cli([str(model_dir), "--file", str(source_file)])
    assert out.splitlines() == expected and f"{source_file}: line 2 not valid UTF-8" in err


def test_a_lone_surrogate_is_translated_as_a_replacement_character(translator):
    assert translate(["Ein Hund\udc80."], *translator) == translate(["Ein Hund\ufffd."], *translator)


def test_a_one_megabyte_line_is_cut_to_the_maximum_source_length_with_a_warning(model_dir, translator):
    model, tokenizer = translator
    line = " ".join(SENTENCES * 10_000)[:1_000_000]
    out, err = run_cli([str(model_dir), "--max_new_tokens", "3"], line.encode() + b"\n" + SENTENCES[0].encode())
    assert err.startswith(
        f"simple-s2s-translate: warning: sentence 1 is longer than {FALLBACK_MAX_SOURCE_LENGTH} tokens"
    )
    inputs = tokenizer(line, truncation=True, max_length=FALLBACK_MAX_SOURCE_LENGTH, return_tensors="pt")
    assert inputs.input_ids.shape[1] == FALLBACK_MAX_SOURCE_LENGTH
    cut = tokenizer.decode(model.generate(**inputs, max_new_tokens=3)[0], skip_special_tokens=True).strip()
    assert out.splitlines() == [cut, translate([SENTENCES[0]], *translator, max_new_tokens=3)[0]]


def test_the_tokenizers_model_max_length_is_the_default_limit(translator):
    model, tokenizer = translator
    short = tokenizer.__class__.from_pretrained(tokenizer.name_or_path, model_max_length=4)
    with pytest.warns(UserWarning, match="sentence 2 is longer than 4 tokens"):
        cut = translate(["Hund.", SENTENCES[0]], model, short, max_new_tokens=3)
    first_tokens = tokenizer.convert_tokens_to_string(tokenizer.tokenize(SENTENCES[0])[:3])
    assert cut[1] == translate([first_tokens], model, tokenizer, max_new_tokens=3)[0]


def test_max_new_tokens_and_stream_reach_generate(model_dir, translator):
    out, _ = run_cli([str(model_dir), "--max_new_tokens", "1", "--num_beams", "1"], "\n".join(SENTENCES).encode())
    assert out.splitlines() == translate(SENTENCES, *translator, max_new_tokens=1, num_beams=1)
    assert out.splitlines() != translate(SENTENCES, *translator, num_beams=1)
    streamed, _ = run_cli([str(model_dir), "--stream"], "\n".join(SENTENCES[:3]).encode())
    assert [line.strip() for line in streamed.splitlines()] == translate(SENTENCES[:3], *translator, num_beams=1)


def broken_copy(model_dir, tmp_path, damage: str):
    folder = tmp_path / damage
    shutil.copytree(model_dir, folder)
    if damage == "no tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (folder / name).unlink()
    elif damage == "truncated tokenizer.json":
        text = (folder / "tokenizer.json").read_text()
        (folder / "tokenizer.json").write_text(text[: len(text) // 2])
    elif damage == "weights without a tensor":
        weights = load_file(folder / "model.safetensors")
        save_file({k: v for k, v in list(weights.items())[1:]}, folder / "model.safetensors")
    elif damage == "bad config":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "hidden_size": -1}))
    return folder


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no tokenizer", "the folder holds no tokenizer (tokenizer.json or tokenizer_config.json)"),
        ("truncated tokenizer.json", ""),
        ("weights without a tensor", "lack 1 of the SimpleS2SForConditionalGeneration tensors"),
        ("bad config", "hidden_size"),
    ],
)
def test_a_damaged_model_folder_is_one_line_naming_it(model_dir, tmp_path, capsys, damage, message):
    folder = broken_copy(model_dir, tmp_path, damage)
    with pytest.raises(SystemExit) as exit_info:
        main([str(folder), "Hallo"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"simple-s2s-translate: error: cannot load model {str(folder)!r}: ")
    assert message in error and error.count("\n") == 1, error


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the message of a build without CUDA")
def test_cuda_on_a_cpu_build_is_one_line(model_dir, capsys):
    with pytest.raises(SystemExit):
        main([str(model_dir), "--device", "cuda", "Hallo"])
    error = capsys.readouterr().err
    assert error.startswith("simple-s2s-translate: error: --device cuda: ") and error.count("\n") == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
)
def test_fuzz_any_bytes_on_stdin_give_one_line_per_input_line(model_dir, data):
    lines = data.split(b"\n")
    expected = len(lines) - (lines[-1] == b"")
    out, err = run_cli([str(model_dir), "--max_new_tokens", "3", "--num_beams", "1"], data)
    assert out.count("\n") == expected, (out, err)
    assert all(line.startswith("simple-s2s-translate: warning: ") for line in err.splitlines()), err


def test_max_new_tokens_on_a_folder_saved_with_max_length_is_taken_without_a_warning(model_dir, tmp_path, caplog):
    """Folders saved before the job saved `max_new_tokens` fix `max_length`; generate() warned on every batch."""
    folder = tmp_path / "old"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.pop("max_new_tokens")
    (folder / "generation_config.json").write_text(json.dumps({**config, "max_length": 12}))
    model, tokenizer = load_translator(str(folder))
    inputs = tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)
    expected = tokenizer.batch_decode(model.generate(**inputs, max_new_tokens=3), skip_special_tokens=True)
    caplog.clear()
    assert translate(SENTENCES[:2], model, tokenizer, max_new_tokens=3) == [text.strip() for text in expected]
    assert not caplog.records  # no "Both `max_new_tokens` (=3) and `max_length`(=12) seem to have been set"
