"""One run per output folder: a lock file naming the process that owns the folder, refused while that process lives and
taken over once it is gone (killed runs leave their lock behind)."""

import json
import os
import socket
from pathlib import Path

import psutil

LOCK_NAME = ".lock"


class OutputDirInUse(ValueError):
    """Another live process owns the output folder, or it cannot be written to."""


def this_process() -> dict:
    # the start time tells a live owner from a later process that got the same id
    return {"pid": os.getpid(), "started": psutil.Process().create_time(), "host": socket.gethostname()}


def is_alive(owner: dict) -> bool:
    """True unless `owner` is surely gone: on another machine it cannot be checked, so it counts as alive."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        return abs(psutil.Process(owner["pid"]).create_time() - owner["started"]) < 1e-2
    except (psutil.NoSuchProcess, KeyError, TypeError, ValueError):
        return False


class OutputDirLock:
    """`<output_dir>/.lock`: `acquire()` creates it or takes over a stale one, `release()` removes it if it is ours."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / LOCK_NAME
        self.owner = this_process()
        self.created_folder = False

    def read_owner(self) -> dict:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # vanished or half written: nobody can hold it
        return owner if isinstance(owner, dict) else {}

    def acquire(self) -> None:
        self.created_folder = not self.output_dir.exists()
        record = json.dumps(self.owner)
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with open(self.path, "x", encoding="utf-8") as lock_file:
                lock_file.write(record)
            return
        except FileExistsError:
            if not self.output_dir.is_dir():
                raise OutputDirInUse(f"--output_dir {self.output_dir} is a file, not a folder") from None
        except OSError as error:  # a read-only file system, no permission, a file on the path
            raise OutputDirInUse(f"cannot write --output_dir {self.output_dir}: {error.strerror}") from None
        owner = self.read_owner()
        if owner and is_alive(owner):
            self.refuse(owner)
        partial = self.path.with_name(f"{LOCK_NAME}.{os.getpid()}")
        partial.write_text(record)
        os.replace(partial, self.path)  # the stale lock is ours now, unless another process took it at the same time
        if (owner := self.read_owner()) != self.owner:
            self.refuse(owner)

    def refuse(self, owner: dict) -> None:
        where = f" on {owner.get('host')}" if owner.get("host") != self.owner["host"] else ""
        raise OutputDirInUse(
            f"--output_dir {self.output_dir} is in use by process {owner.get('pid')}{where} ({self.path}); "
            "wait for that run to end or pick another --output_dir"
        )

    def release(self) -> None:
        if self.read_owner() == self.owner:
            self.path.unlink(missing_ok=True)
            if self.created_folder and not any(self.output_dir.iterdir()):
                self.output_dir.rmdir()  # a run refused before writing anything leaves nothing behind


__all__ = ["LOCK_NAME", "OutputDirInUse", "OutputDirLock"]
