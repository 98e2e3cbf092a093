"""docs/deployment.md's "Share your model" section, run as written: push, pull by name, pipeline, remote code, offline.

The block that pushes runs with transformers' `HfApi` replaced by the recording one; what it pushed is laid out as the
Hub cache that the following blocks load from by name. Each block that prints is compared with the same block run on
the local folder instead of the Hub name. The `trust_remote_code=True` block runs here, where the package is imported
(so transformers uses the installed classes); test_hub.py runs the same calls in a fresh interpreter without the
package, where the repository's code is used.
"""

import contextlib
import io
import re
import shutil

import huggingface_hub.constants
import pytest
from hub_utils import (
    REPO_ROOT,
    recording_hub,
    tiny_checkpoint,
)

from hf_simple_s2s import SimpleS2SForConditionalGeneration

SECTION = "## Share your model"
CHECKPOINT = "outputs/simple-s2s"  # the folder the section pushes from
REPO_ID = "org/simple-s2s"  # the repository it pushes to


def section_blocks(heading: str = SECTION) -> list[str]:
    """The Python code blocks of docs/deployment.md's section `heading`."""
    text = (REPO_ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert heading in text, f"docs/deployment.md has no {heading!r} section"
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def run_block(code: str) -> tuple[str, dict]:
    """Exec `code` as a fresh module; return what it printed and its globals."""
    printed, namespace = io.StringIO(), {"__name__": "readme"}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/deployment.md", "exec"), namespace)
    return printed.getvalue(), namespace


def test_share_section_runs_as_written(tmp_path, monkeypatch):
    blocks = section_blocks()
    push_blocks = [block for block in blocks if ".push_to_hub(" in block]
    remote_blocks = [block for block in blocks if "trust_remote_code=True" in block]
    local_blocks = [block for block in blocks if block not in push_blocks and block not in remote_blocks]
    assert len(push_blocks) == 1 and len(remote_blocks) == 1 and len(local_blocks) == 2, blocks
    assert blocks.index(push_blocks[0]) == 0, "the push comes first: the other blocks load what it pushed"

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_checkpoint(), tmp_path / CHECKPOINT)
    with recording_hub() as hub:
        run_block(push_blocks[0])
    pushed_files = {recorded.path_in_repo for commit in hub.commits_of(REPO_ID) for recorded in commit.files}
    assert {"model.safetensors", "modeling_simple_s2s.py", "tokenizer.json"} <= pushed_files
    hub_cache = tmp_path / "hub"
    hub.write_cache(hub_cache)

    # What each block prints when it loads the local folder: the reference for the same block loading by name.
    expected = [run_block(block.replace(f'"{REPO_ID}"', f'"{CHECKPOINT}"'))[0] for block in local_blocks]
    assert all(expected), "the blocks must print their translations for this test to compare them"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    for block, printed in zip(local_blocks, expected, strict=True):
        assert run_block(block)[0] == printed, block
    # The remote-code block makes the same calls as the "pull by name" block, so it prints the same.
    pull_block = next(block for block in local_blocks if "pipeline" not in block)
    printed, namespace = run_block(remote_blocks[0])
    assert printed == expected[local_blocks.index(pull_block)]
    # The section's promise: with the package imported, even `trust_remote_code=True` uses the installed classes.
    assert type(namespace["model"]) is SimpleS2SForConditionalGeneration


@pytest.mark.parametrize("needle", ["trust_remote_code", "pip install", "simple-s2s-translation", "revision="])
def test_share_section_documents(needle):
    """The prose covers what a user must know to share and load safely (the code itself is tested above)."""
    section = (REPO_ROOT / "docs" / "deployment.md").read_text(encoding="utf-8").split(SECTION, 1)[1]
    assert needle in section
