"""The Space folder `write_space` makes beside a model: its files, and its `app.py` serving a saved model."""

import os
import socket
import subprocess
import sys
import time

import pytest
from main_job_helpers import GERMAN, save_tiny_translator

gradio = pytest.importorskip("gradio", reason="the page needs the space extra")
from gradio_client import Client  # noqa: E402
from huggingface_hub import SpaceCard  # noqa: E402

from hf_simple_s2s.inference.translate import load_translator, translate  # noqa: E402
from hf_simple_s2s.space.app import SHIPPED_EXAMPLES, read_examples  # noqa: E402
from hf_simple_s2s.space.folder import write_space  # noqa: E402

MODEL_ID = "org/simple-s2s"


def test_the_folder_holds_a_gradio_space_for_the_model(tmp_path):
    space = write_space(tmp_path / "space", MODEL_ID)
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "examples.txt", "requirements.txt"]

    card = SpaceCard.load(space / "README.md")
    assert card.data.sdk == "gradio" and card.data.sdk_version == gradio.__version__
    assert card.data.app_file == "app.py" and card.data.models == [MODEL_ID]
    assert card.data.title == f"SimpleS2S: {MODEL_ID}" and MODEL_ID in card.text
    assert (space / "requirements.txt").read_text() == "hf_simple_s2s[space]\n"
    examples = (space / "examples.txt").read_text(encoding="utf-8").splitlines()
    assert examples == read_examples(SHIPPED_EXAMPLES) and len(examples) == 10
    app = (space / "app.py").read_text()
    assert f"default_model={MODEL_ID!r}" in app
    compile(app, "app.py", "exec")


def test_requirement_title_and_examples_can_be_chosen(tmp_path):
    requirement = "hf_simple_s2s[space] @ git+https://example.org/me/hf_simple_s2s@v0.1.0"
    space = write_space(tmp_path, MODEL_ID, title="De-En", requirement=requirement, examples=["Hallo .", "Tschüss ."])
    assert (space / "requirements.txt").read_text() == requirement + "\n"
    assert (space / "examples.txt").read_text(encoding="utf-8") == "Hallo .\nTschüss .\n"
    assert SpaceCard.load(space / "README.md").data.title == "De-En"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(model_id="simple-s2s"), "model_id must be a Hub name 'owner/name', got 'simple-s2s'"),
        (dict(requirement="a\nb"), "requirement must be one requirement line"),
        (dict(examples=["one\ntwo"]), "examples must be single lines"),
        (dict(examples=["one\rtwo"]), "examples must be single lines"),  # data.read_lines reads a lone CR as a break
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_space(tmp_path, **{"model_id": MODEL_ID, **kwargs})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # a fresh interpreter imports torch, transformers and gradio: 10-30 s
def test_the_spaces_app_py_serves_a_saved_model(tmp_path):
    model_dir = save_tiny_translator(tmp_path / "model")
    space = write_space(tmp_path / "space", MODEL_ID, examples=GERMAN[:3])
    port = free_port()
    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(
        [sys.executable, "app.py", str(model_dir), "--port", str(port)], cwd=space, env=environment, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"app.py did not serve the page:\n{server.communicate()[0]}")
                time.sleep(1)
        table, _, _ = client.predict(GERMAN[0], "float32", 2, 1.0, 0, 1, 12, api_name="/translate")
        model, tokenizer = load_translator(str(model_dir))
        assert table["data"][0][1] == translate([GERMAN[0]], model, tokenizer, num_beams=2, max_new_tokens=12)[0]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_docs_block_writes_and_pushes_the_space(tmp_path, monkeypatch):
    """docs/deployment.md's Space block, run as written against a recording HfApi: one commit of the folder."""
    from hub_utils import RecordingHfApi
    from test_docs import run_block, section_blocks

    class SpaceRecordingHfApi(RecordingHfApi):
        """Also records the README that upload_folder sends to the Hub's YAML validation first."""

        validated: list[tuple[str, str]] = []

        def _validate_yaml(self, content: str, *, repo_type: str | None = None, token=None):
            self.validated.append((content, repo_type))

    (block,) = section_blocks("## A Space")
    hub = SpaceRecordingHfApi()
    # Without xet, upload_folder sends its files through create_commit, the method the recording HfApi replaces.
    monkeypatch.setattr("huggingface_hub.hf_api.is_xet_available", lambda: False)
    monkeypatch.setattr("huggingface_hub.HfApi", lambda *args, **kwargs: hub)
    monkeypatch.chdir(tmp_path)
    run_block(block)
    (commit,) = hub.commits_of("org/simple-s2s-demo")
    pushed = {recorded.path_in_repo: recorded.content for recorded in commit.files}
    written = write_space(tmp_path / "expected", MODEL_ID)
    assert pushed == {path.name: path.read_bytes() for path in written.iterdir()}
    assert hub.validated == [(pushed["README.md"].decode(), "space")]
