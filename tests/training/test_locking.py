"""One run per output folder (a lock with the owner's process id), and a full disk: one line, the last checkpoint
still loadable."""

import errno
import json
import signal
import subprocess
import sys

import psutil
import pytest
import torch
from main_job_helpers import tiny_run_args, write_small_corpus
from transformers import AutoModelForSeq2SeqLM

from hf_simple_s2s.training.checkpoints import last_complete_checkpoint, verify_checksums
from hf_simple_s2s.training.locking import LOCK_NAME, OutputDirInUse, OutputDirLock
from hf_simple_s2s.training.main import main


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_small_corpus(tmp_path_factory.mktemp("corpus"))


def test_a_folder_locked_by_a_live_process_is_refused_and_a_stale_lock_taken_over(data_dir, tmp_path, capsys):
    output_dir = tmp_path / "model"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        held = OutputDirLock(output_dir)
        held.owner = {**held.owner, "pid": other.pid, "started": psutil.Process(other.pid).create_time()}
        held.acquire()
        with pytest.raises(SystemExit) as exit_info:
            main(tiny_run_args(data_dir, output_dir))
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and f"--output_dir {output_dir} is in use by process {other.pid}" in error
        with pytest.raises(OutputDirInUse):
            OutputDirLock(output_dir).acquire()
    finally:
        other.kill()
        other.wait()
    # the owner is gone (killed runs leave their lock): the next run takes the folder over and releases it at the end
    main(tiny_run_args(data_dir, output_dir))
    assert (output_dir / "model.safetensors").is_file() and not (output_dir / LOCK_NAME).exists()


def test_a_lock_of_a_reused_process_id_is_stale(tmp_path):
    lock = OutputDirLock(tmp_path)
    (tmp_path / LOCK_NAME).write_text(json.dumps({**lock.owner, "started": lock.owner["started"] - 1000}))
    lock.acquire()  # our own id, but a process started earlier: not us, so not alive
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == lock.owner
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_no_space_left_while_saving_a_checkpoint_keeps_the_last_one_loadable(data_dir, tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "model"
    original_save = torch.save

    def save(obj, f, *args, **kwargs):
        if "checkpoint-4" in str(f):  # the disk fills up while the second checkpoint is written
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return original_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_run_args(data_dir, output_dir))
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.splitlines()[-1]  # after the progress bars, one line, no traceback
    assert error.startswith("simple-s2s-train: error: no space left on device")
    last = output_dir / "training_state" / "checkpoint-2"
    assert f"the last complete checkpoint, {last}, is intact" in error
    assert last_complete_checkpoint(str(output_dir / "training_state"), require_checksums=True) == str(last)
    verify_checksums(str(last))
    AutoModelForSeq2SeqLM.from_pretrained(last)
    assert not (output_dir / LOCK_NAME).exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is the user's again
