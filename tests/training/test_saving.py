"""The training job's saving is crash-safe, and damaged folders are refused.

The job writes its model with `save_pretrained_atomically`: a crash while the files are written leaves the previous
save loadable; a crash while they are moved in leaves a marker that `check_saved_folder` refuses. `check_saved_folder`
refuses truncated or corrupted weights (against the checksums written at save time) and a bad `config.json`, naming
the file; `from_pretrained` itself (transformers, safetensors and the config's validation) refuses everything but a
flipped bit, which only the checksums can see."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import transformers.modeling_utils
from conftest import make_tokenizer, tiny_model
from save_loop import LARGER
from transformers import AutoModelForSeq2SeqLM

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from hf_simple_s2s.training import checkpoints
from hf_simple_s2s.training.checkpoints import check_saved_folder, save_pretrained_atomically

REPO_ROOT = Path(__file__).resolve().parents[2]


def assert_same_weights(loaded, expected) -> None:
    expected_weights = expected.state_dict()
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, expected_weights[name]), name


@pytest.fixture
def saved_folder(tmp_path) -> Path:
    """A folder holding model 0, its tokenizer and a file of the user's."""
    folder = tmp_path / "model"
    save_pretrained_atomically(tiny_model(seed=0), folder)
    make_tokenizer("multi30k").save_pretrained(folder)
    (folder / "notes.txt").write_text("mine")
    return folder


def test_crash_while_writing_keeps_the_previous_save(saved_folder, monkeypatch):
    real_writer = transformers.modeling_utils.safe_save_file

    def write_half_then_crash(tensors, filename, metadata=None):
        real_writer(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(Path(filename).read_bytes()[: os.path.getsize(filename) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", write_half_then_crash)
    with pytest.raises(OSError, match="No space left"):
        save_pretrained_atomically(tiny_model(seed=1), saved_folder)

    check_saved_folder(saved_folder, SimpleS2SConfig)
    assert_same_weights(SimpleS2SForConditionalGeneration.from_pretrained(saved_folder), tiny_model(seed=0))
    assert (saved_folder / "notes.txt").read_text() == "mine" and (saved_folder / "tokenizer.json").is_file()
    assert not [name for name in os.listdir(saved_folder) if name.startswith(".")]  # no staging folder left


def test_crash_while_moving_files_in_is_refused_then_repaired_by_saving_again(saved_folder, monkeypatch):
    real_replace, calls = os.replace, []

    def replace_once_then_crash(source, destination):
        calls.append(destination)
        if len(calls) > 1:
            raise KeyboardInterrupt  # the process stops between two files
        real_replace(source, destination)

    monkeypatch.setattr(checkpoints.os, "replace", replace_once_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained_atomically(tiny_model(seed=1), saved_folder)
    monkeypatch.undo()

    with pytest.raises(OSError, match="cut off while being saved"):
        check_saved_folder(saved_folder, SimpleS2SConfig)
    save_pretrained_atomically(tiny_model(seed=1), saved_folder)
    check_saved_folder(saved_folder, SimpleS2SConfig)
    assert_same_weights(SimpleS2SForConditionalGeneration.from_pretrained(saved_folder), tiny_model(seed=1))


def test_resaving_with_other_sharding_removes_stale_shards_and_keeps_other_files(saved_folder):
    save_pretrained_atomically(tiny_model(seed=1), saved_folder, max_shard_size="20KB")
    assert (saved_folder / "model.safetensors.index.json").is_file() and not (
        saved_folder / "model.safetensors"
    ).exists()
    assert_same_weights(SimpleS2SForConditionalGeneration.from_pretrained(saved_folder), tiny_model(seed=1))
    save_pretrained_atomically(tiny_model(seed=2), saved_folder)
    assert sorted(name for name in os.listdir(saved_folder) if "safetensors" in name) == ["model.safetensors"]
    assert_same_weights(SimpleS2SForConditionalGeneration.from_pretrained(saved_folder), tiny_model(seed=2))
    assert (saved_folder / "notes.txt").read_text() == "mine"


def truncate(path: Path, keep: float) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def flip_bytes_in_the_tensor_data(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-64:-32] = bytes(byte ^ 0xFF for byte in data[-64:-32])
    path.write_bytes(bytes(data))


def edit_config(path: Path, **values) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


DAMAGE = {
    "weights_truncated_in_half": ("model.safetensors", lambda p: truncate(p, 0.5)),
    "weights_missing_last_byte": ("model.safetensors", lambda p: truncate(p, 1 - 1 / p.stat().st_size)),
    "weights_empty": ("model.safetensors", lambda p: p.write_bytes(b"")),
    "weights_bits_flipped": ("model.safetensors", flip_bytes_in_the_tensor_data),
    "weights_header_garbage": ("model.safetensors", lambda p: p.write_bytes(b"\x10\x00" + p.read_bytes()[2:])),
    "weights_deleted": ("model.safetensors", lambda p: p.unlink()),
    "config_string_for_int": ("config.json", lambda p: edit_config(p, hidden_size="16")),
    "config_float_for_int": ("config.json", lambda p: edit_config(p, vocab_size=40.5)),
    "config_int_for_string": ("config.json", lambda p: edit_config(p, attention_type=3)),
    "config_bad_value": ("config.json", lambda p: edit_config(p, attention_type="cosine")),
    "config_truncated_json": ("config.json", lambda p: truncate(p, 0.5)),
    "config_not_an_object": ("config.json", lambda p: p.write_text("[1, 2]")),
}


@pytest.mark.parametrize("file_name, damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_files_are_refused_naming_the_file(file_name, damage, saved_folder):
    damage(saved_folder / file_name)
    with pytest.raises((ValueError, OSError)) as error:
        check_saved_folder(saved_folder, SimpleS2SConfig)
    assert str(saved_folder / file_name) in str(error.value)


@pytest.mark.parametrize(
    "file_name, damage",
    [v for k, v in DAMAGE.items() if k != "weights_bits_flipped"],
    ids=[k for k in DAMAGE if k != "weights_bits_flipped"],
)
def test_from_pretrained_itself_refuses_damaged_files(file_name, damage, saved_folder):
    """No loading code of the model's own: safetensors and the config's validation refuse these."""
    damage(saved_folder / file_name)
    for loader in (SimpleS2SForConditionalGeneration, AutoModelForSeq2SeqLM):
        with pytest.raises(Exception, match="(?i)safetensor|header|config|no file named|valid"):
            loader.from_pretrained(saved_folder)


def test_config_errors_name_the_field_and_the_value(saved_folder):
    edit_config(saved_folder / "config.json", hidden_size="16")
    with pytest.raises(ValueError, match=r"(?s)config\.json.*hidden_size.*got str"):
        AutoModelForSeq2SeqLM.from_pretrained(saved_folder)
    edit_config(saved_folder / "config.json", hidden_size=16, attention_type="cosine")
    with pytest.raises(ValueError, match=r"attention_type.*'cosine'"):
        SimpleS2SForConditionalGeneration.from_pretrained(saved_folder)


@pytest.mark.parametrize("content", ["", "\n\n", "   \n"], ids=["empty", "blank_lines", "spaces"])
def test_blank_lines_in_the_checksums_file_are_ignored(saved_folder, content):
    checksums = saved_folder / "checksums.sha256"
    checksums.write_text(content + checksums.read_text() + content)
    check_saved_folder(saved_folder, SimpleS2SConfig)


def test_a_malformed_checksums_line_is_named(saved_folder):
    checksums = saved_folder / "checksums.sha256"
    checksums.write_text(checksums.read_text() + "deadbeef\n")
    with pytest.raises(ValueError, match=r"line 2 of .*checksums.sha256.*'deadbeef'"):
        check_saved_folder(saved_folder, SimpleS2SConfig)


def test_a_header_with_string_offsets_is_refused_clearly(saved_folder):
    path = saved_folder / "model.safetensors"
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    first = next(name for name in header if name != "__metadata__")
    header[first]["data_offsets"] = [str(offset) for offset in header[first]["data_offsets"]]
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data[8 + size :])
    with pytest.raises(
        ValueError, match=r"model\.safetensors is truncated or not a safetensors file.*offsets must be integers"
    ):
        check_saved_folder(saved_folder, SimpleS2SConfig)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(5))
def test_sigkill_while_saving_never_leaves_a_different_or_half_written_model(trial, tmp_path):
    """A process saving two models alternately (as the job saves) is SIGKILLed at a random moment: the folder then
    loads as exactly one of the two, or is refused as cut off; it never loads as anything else."""
    folder = tmp_path / "model"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "tests" / "save_loop.py"), str(folder)], env=env)
    deadline = time.monotonic() + 180
    while not (folder / "READY").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the saving loop did not start"
        time.sleep(0.05)
    time.sleep(random.Random(trial).uniform(0.0, 1.5))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)

    candidates = [tiny_model(seed=seed, **LARGER) for seed in (0, 1)]
    try:
        check_saved_folder(str(folder), SimpleS2SConfig)
        loaded = SimpleS2SForConditionalGeneration.from_pretrained(folder)
    except OSError as error:
        assert "cut off while being saved" in str(error)
        return
    weights = loaded.state_dict()
    matches = [all(torch.equal(weights[n], v) for n, v in c.state_dict().items()) for c in candidates]
    assert sum(matches) == 1
