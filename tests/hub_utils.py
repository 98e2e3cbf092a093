"""Test helpers for sharing: a tiny saved checkpoint, a recording Hub, and the offline Hub cache layout.

The Hub cannot be reached from CI, so uploads are tested at `huggingface_hub`'s own seam: transformers sends every
push through one shared `HfApi` instance (`transformers.utils.hub.hf_api()`); `RecordingHfApi` replaces it, keeps the
commit operations transformers builds (path in repo, bytes, sha256) and answers like the Hub would. What was recorded
is then laid out on disk as `hf_hub_download` leaves a repository in the cache (refs, snapshots linking to blobs), so
that loading by name with `HF_HUB_OFFLINE=1` goes through huggingface_hub's real offline resolution.
"""

import atexit
import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from conftest import make_tokenizer, peaky_model
from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard, RepoUrl
from transformers.utils import hub as transformers_hub

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["w5 w9 w14 w22", "w31 w12", "w8 w8 w19 w25 w7", "w39", "w4 w5 w6"]  # what the tests translate


@functools.cache
def tiny_checkpoint() -> Path:
    """A folder with a tiny model and its tokenizer, as a training run saves them; made once per test session."""
    folder = Path(tempfile.mkdtemp(prefix="simple_s2s_checkpoint_"))
    atexit.register(shutil.rmtree, folder, True)
    peaky_model().save_pretrained(folder)  # an untrained model whose outputs differ from source to source
    make_tokenizer("words").save_pretrained(folder)
    return folder


def translate(model, tokenizer, sources: list[str], **generate_kwargs) -> list[str]:
    """Batched, padded greedy (or beam) translation; the reference every loading path is compared with."""
    batch = tokenizer(sources, padding=True, return_tensors="pt")
    with torch.no_grad():
        output_ids = model.generate(**batch, max_new_tokens=10, **generate_kwargs)
    return tokenizer.batch_decode(output_ids, skip_special_tokens=True)


@dataclass
class RecordedFile:
    path_in_repo: str
    content: bytes
    sha256: str


@dataclass
class RecordedCommit:
    oid: str  # 40 hex digits, like a git commit id
    repo_id: str
    branch: str
    parent: str | None  # the branch's head before this commit
    message: str
    files: list[RecordedFile]


class RecordingHfApi(HfApi):
    """An `HfApi` whose network calls (`create_repo`, `create_branch`, `create_commit`) are recorded, not sent.

    `create_commit` receives the `CommitOperationAdd`s transformers built from the folder it saved; their bytes are
    read at once, because transformers deletes that temporary folder as soon as the call returns.
    """

    def __init__(self):
        super().__init__(library_name="transformers")
        self.repos: set[str] = set()
        self.branches: dict[tuple[str, str], str | None] = {}  # (repo, branch) -> head commit
        self.commits: list[RecordedCommit] = []

    def create_repo(self, repo_id: str, *, exist_ok: bool = False, **kwargs) -> RepoUrl:
        if repo_id in self.repos and not exist_ok:
            raise ValueError(f"repository {repo_id!r} already exists")
        self.repos.add(repo_id)
        self.branches.setdefault((repo_id, "main"), None)
        return RepoUrl(f"{self.endpoint}/{repo_id}", endpoint=self.endpoint)

    def create_branch(self, repo_id: str, *, branch: str, exist_ok: bool = False, **kwargs) -> None:
        if (repo_id, branch) in self.branches and not exist_ok:
            raise ValueError(f"branch {branch!r} already exists in {repo_id!r}")
        self.branches.setdefault((repo_id, branch), self.branches.get((repo_id, "main")))

    def create_commit(self, repo_id: str, operations, *, commit_message: str, revision: str | None = None, **kwargs):
        if repo_id not in self.repos:
            raise ValueError(f"create_commit on {repo_id!r} before create_repo")
        branch = revision or "main"
        files = []
        for operation in operations:
            if not isinstance(operation, CommitOperationAdd):
                raise NotImplementedError(f"only additions are recorded, got {operation!r}")
            with operation.as_file() as file:
                files.append(RecordedFile(operation.path_in_repo, file.read(), operation.upload_info.sha256.hex()))
        parent = self.branches.get((repo_id, branch))
        digest = hashlib.sha1(f"{parent}\n{commit_message}\n".encode())
        for recorded in sorted(files, key=lambda recorded: recorded.path_in_repo):
            digest.update(f"{recorded.path_in_repo} {recorded.sha256}\n".encode())
        oid = digest.hexdigest()
        self.commits.append(RecordedCommit(oid, repo_id, branch, parent, commit_message, files))
        self.branches[(repo_id, branch)] = oid
        return CommitInfo(
            commit_url=f"{self.endpoint}/{repo_id}/commit/{oid}",
            commit_message=commit_message,
            commit_description=kwargs.get("commit_description") or "",
            oid=oid,
        )

    def _validate_yaml(self, content: str, *, repo_type: str | None = None, token=None) -> None:
        """The Hub checks a README.md's metadata before `upload_folder` sends it; here, that it parses as a card's."""
        ModelCard(content)

    def commits_of(self, repo_id: str) -> list[RecordedCommit]:
        return [commit for commit in self.commits if commit.repo_id == repo_id]

    def tree(self, oid: str) -> dict[str, RecordedFile]:
        """The files as of commit `oid`: its parent's tree with the commit's files added or replaced."""
        commit = next(commit for commit in self.commits if commit.oid == oid)
        files = self.tree(commit.parent) if commit.parent is not None else {}
        return files | {recorded.path_in_repo: recorded for recorded in commit.files}

    def write_cache(self, cache_dir: Path) -> None:
        """Lay every recorded commit out as `hf_hub_download` would: blobs, one snapshot per commit, refs per branch.

        `models--{org}--{name}/blobs/<sha256>`, `snapshots/<commit>/<path>` (a relative link to the blob) and
        `refs/<branch>` holding the branch's head commit. The Hub names a regular file's blob by its git hash rather
        than its sha256; offline resolution never reads blob names.
        """
        for commit in self.commits:
            repo_folder = Path(cache_dir) / ("models--" + commit.repo_id.replace("/", "--"))
            (repo_folder / "blobs").mkdir(parents=True, exist_ok=True)
            for recorded in self.tree(commit.oid).values():
                blob = repo_folder / "blobs" / recorded.sha256
                if not blob.exists():
                    blob.write_bytes(recorded.content)
                pointer = repo_folder / "snapshots" / commit.oid / recorded.path_in_repo
                pointer.parent.mkdir(parents=True, exist_ok=True)
                if not pointer.exists():
                    pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        for (repo_id, branch), head in self.branches.items():
            if head is not None:
                ref = Path(cache_dir) / ("models--" + repo_id.replace("/", "--")) / "refs" / branch
                ref.parent.mkdir(parents=True, exist_ok=True)
                ref.write_text(head)


@contextlib.contextmanager
def recording_hub() -> Iterator[RecordingHfApi]:
    """Route transformers' Hub calls to a `RecordingHfApi` for the duration of the block."""
    recorder = RecordingHfApi()
    saved = transformers_hub._hf_api
    transformers_hub._hf_api = recorder
    try:
        yield recorder
    finally:
        transformers_hub._hf_api = saved


def run_fresh_python(code: str, hub_cache: Path, *, package_importable: bool = True) -> subprocess.CompletedProcess:
    """Run `code` in a new interpreter, offline, with `hub_cache` as the Hub cache and a private modules cache.

    With `package_importable=False`, `import hf_simple_s2s` fails in that interpreter even where the package is
    installed (CI installs it in editable mode), as on a stranger's machine.
    """
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub_cache),
        "HF_MODULES_CACHE": str(Path(hub_cache) / "modules"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",  # as conftest does in the test process
    }
    if package_importable:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    else:
        env.pop("PYTHONPATH", None)
        code = "import sys\nsys.modules['hf_simple_s2s'] = None  # any import of the package now fails\n" + code
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=hub_cache,
        env=env,
        stdin=subprocess.DEVNULL,  # a prompt (e.g. to trust remote code) fails at once instead of waiting
        capture_output=True,
        text=True,
        timeout=300,
    )
