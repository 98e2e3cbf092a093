"""Sharing on the Hub: what `push_to_hub` sends, and loading it back by name, offline, from the Hub cache layout."""

import json
import os
import sys
import traceback
from pathlib import Path

import pytest
import torch
from conftest import make_tokenizer, peaky_model
from hub_utils import (
    REPO_ROOT,
    SOURCES,
    recording_hub,
    run_fresh_python,
    tiny_checkpoint,
    translate,
)
from huggingface_hub import ModelCard
from huggingface_hub.errors import LocalEntryNotFoundError
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from transformers.dynamic_module_utils import get_imports

import hf_simple_s2s
from hf_simple_s2s import SimpleS2SForConditionalGeneration

REPO_ID = "org/simple-s2s"
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors")
CODE_FILES = ("configuration_simple_s2s.py", "modeling_simple_s2s.py")  # exactly the two model files travel
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """The tiny checkpoint pushed (model, then tokenizer) to a recording Hub and laid out as an offline Hub cache."""
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_checkpoint())
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint())
    with recording_hub() as hub:
        model_commit = model.push_to_hub(REPO_ID)
        tokenizer_commit = tokenizer.push_to_hub(REPO_ID)
    cache = tmp_path_factory.mktemp("hub_cache")
    hub.write_cache(cache)
    expected = {
        "greedy": translate(model, tokenizer, SOURCES),
        "beam": translate(model, tokenizer, SOURCES, num_beams=3),
    }
    assert len(set(expected["greedy"])) > 1, "outputs must depend on the source for the comparisons to mean anything"
    return dict(hub=hub, cache=cache, model=model, expected=expected, commits=(model_commit.oid, tokenizer_commit.oid))


def test_push_sends_the_saved_folder_in_two_commits(pushed, tmp_path):
    hub, (model_oid, tokenizer_oid) = pushed["hub"], pushed["commits"]
    pushed["model"].save_pretrained(tmp_path)
    model_commit, tokenizer_commit = hub.commits_of(REPO_ID)
    assert (model_commit.oid, tokenizer_commit.oid) == (model_oid, tokenizer_oid)
    assert model_commit.branch == tokenizer_commit.branch == "main"
    assert sorted(recorded.path_in_repo for recorded in model_commit.files) == sorted(
        [*MODEL_FILES, *CODE_FILES, "README.md"]
    )
    assert sorted(recorded.path_in_repo for recorded in tokenizer_commit.files) == sorted(
        [*TOKENIZER_FILES, "README.md"]
    )
    for recorded in model_commit.files:
        if recorded.path_in_repo != "README.md":  # the card is written by push_to_hub only
            assert recorded.content == (tmp_path / recorded.path_in_repo).read_bytes(), recorded.path_in_repo
    # The code that travels is the package's own, unchanged.
    for recorded in model_commit.files:
        if recorded.path_in_repo in CODE_FILES:
            assert (
                recorded.content
                == (REPO_ROOT / "hf_simple_s2s/models/simple_s2s" / recorded.path_in_repo).read_bytes()
            )
    card = ModelCard(next(f.content for f in model_commit.files if f.path_in_repo == "README.md").decode())
    assert card.data.library_name == "transformers"  # the Hub shows the repo as a transformers model
    config = json.loads(next(f.content for f in model_commit.files if f.path_in_repo == "config.json"))
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_simple_s2s.SimpleS2SForConditionalGeneration"
    assert not [f.path_in_repo for c in hub.commits for f in c.files if f.path_in_repo.endswith((".bin", ".pt"))]


def test_cache_layout_is_the_hubs(pushed):
    repo_folder = pushed["cache"] / "models--org--simple-s2s"
    model_oid, tokenizer_oid = pushed["commits"]
    assert (repo_folder / "refs" / "main").read_text() == tokenizer_oid
    assert sorted(os.listdir(repo_folder / "snapshots" / model_oid)) == sorted(
        [*MODEL_FILES, *CODE_FILES, "README.md"]
    )
    latest = repo_folder / "snapshots" / tokenizer_oid
    assert set(os.listdir(latest)) == {*MODEL_FILES, *CODE_FILES, *TOKENIZER_FILES, "README.md"}
    weights = latest / "model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent == (repo_folder / "blobs").resolve()


def test_remote_code_needs_only_transformers_and_torch(pushed):
    snapshot = pushed["cache"] / "models--org--simple-s2s" / "snapshots" / pushed["commits"][0]
    for name in CODE_FILES:
        # huggingface_hub is a dependency of transformers (the config's `@strict` comes from it).
        third_party = set(get_imports(snapshot / name)) - sys.stdlib_module_names
        assert third_party <= {"torch", "transformers", "huggingface_hub"}, name


# Runs in a fresh interpreter, offline, with the recorded repository as the only thing in the Hub cache. Unpickling
# is made to fail, so the round trip also proves that nothing is read with pickle.
LOAD_BY_NAME = """
import json, pickle, sys, torch
def refuse_unpickling(*args, **kwargs):
    raise AssertionError("loading tried to unpickle")
torch.load = pickle.load = pickle.loads = refuse_unpickling
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer
REPO_ID, SOURCES, TRUST = {repo_id!r}, {sources!r}, {trust}
report = {{}}
if TRUST:
    try:
        AutoModelForSeq2SeqLM.from_pretrained(REPO_ID)
    except ValueError as error:
        report["refused_without_trust"] = "trust_remote_code=True" in str(error)
else:
    import hf_simple_s2s
    from transformers import pipeline
    translator = pipeline(hf_simple_s2s.PIPELINE_TASK, model=REPO_ID)
    report["pipeline"] = [out["translation_text"] for out in translator(SOURCES, max_new_tokens=10)]
model = AutoModelForSeq2SeqLM.from_pretrained(REPO_ID, trust_remote_code=TRUST)
base = AutoModel.from_pretrained(REPO_ID, trust_remote_code=TRUST)
report["base"] = type(base).__module__ + "." + type(base).__name__
tokenizer = AutoTokenizer.from_pretrained(REPO_ID, trust_remote_code=TRUST)
batch = tokenizer(SOURCES, padding=True, return_tensors="pt")
for name, num_beams in (("greedy", 1), ("beam", 3)):
    output_ids = model.generate(**batch, max_new_tokens=10, num_beams=num_beams)
    report[name] = tokenizer.batch_decode(output_ids, skip_special_tokens=True)
report["model_module"] = type(model).__module__
report["package_imported"] = sys.modules.get("hf_simple_s2s") is not None
print("REPORT" + json.dumps(report))
"""


def load_by_name_in_fresh_process(cache: Path, *, package_importable: bool) -> dict:
    code = LOAD_BY_NAME.format(repo_id=REPO_ID, sources=SOURCES, trust=not package_importable)
    result = run_fresh_python(code, cache, package_importable=package_importable)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.split("REPORT", 1)[1])


@pytest.mark.slow
def test_pull_by_name_with_the_package_installed(pushed):
    """A user with `hf_simple_s2s` installed: Auto classes and the pipeline, no remote code, same translations.
    In a fresh interpreter, hence slow; test_readme_share.py pulls by name with the package in this process."""
    report = load_by_name_in_fresh_process(pushed["cache"], package_importable=True)
    assert report["model_module"] == "hf_simple_s2s.models.simple_s2s.modeling_simple_s2s"
    assert report["base"] == "hf_simple_s2s.models.simple_s2s.modeling_simple_s2s.SimpleS2SModel"
    assert report["greedy"] == report["pipeline"] == pushed["expected"]["greedy"]
    assert report["beam"] == pushed["expected"]["beam"]


def test_pull_by_name_with_remote_code_only(pushed):
    """A stranger without the package: refused until `trust_remote_code=True`, then the repo's code, same output."""
    report = load_by_name_in_fresh_process(pushed["cache"], package_importable=False)
    assert report["refused_without_trust"] is True
    assert report["package_imported"] is False
    assert report["model_module"].startswith("transformers_modules.")
    assert report["base"].startswith("transformers_modules.") and report["base"].endswith(".SimpleS2SModel")
    assert report["greedy"] == pushed["expected"]["greedy"]
    assert report["beam"] == pushed["expected"]["beam"]


def test_revision_loads_that_commit_or_branch(tmp_path):
    """Two pushes to main and one to a branch: each `revision=` loads its own weights, the default the latest main."""
    first, second, experiment = peaky_model(seed=1), peaky_model(seed=2), peaky_model(seed=3)
    with recording_hub() as hub:
        first_commit = first.push_to_hub(REPO_ID)
        second.push_to_hub(REPO_ID, commit_message="Retrained")
        experiment.push_to_hub(REPO_ID, revision="experiment")
    hub.write_cache(tmp_path)
    assert hub.commits_of(REPO_ID)[-1].parent == hub.commits_of(REPO_ID)[-2].oid  # the branch starts at main's head
    for revision, pushed_model in [(first_commit.oid, first), (None, second), ("experiment", experiment)]:
        loaded = SimpleS2SForConditionalGeneration.from_pretrained(REPO_ID, cache_dir=tmp_path, revision=revision)
        for name, tensor in pushed_model.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0, msg=f"{revision}: {name}")


def assert_offline_miss(error: BaseException) -> None:
    """transformers' "couldn't find them in the cached files", caused by huggingface_hub's own offline error."""
    assert "couldn't find them in the cached files" in str(error)
    assert isinstance(error.__cause__, LocalEntryNotFoundError), repr(error.__cause__)
    package_folder = Path(hf_simple_s2s.__file__).parent.as_posix()
    ours = [frame.filename for frame in traceback.extract_tb(error.__traceback__) if package_folder in frame.filename]
    # At most the model's own `from_pretrained`, if it overrides it, on the way into transformers.
    assert len(ours) <= 1, ours


@pytest.mark.parametrize(
    "repo_id, revision",
    [("org/no-such-model", None), (REPO_ID, "0" * 40)],
    ids=["repo not in cache", "commit not in cache"],
)
def test_missing_repo_or_revision_offline_is_the_hubs_error(pushed, repo_id, revision):
    with pytest.raises(OSError) as raised:
        AutoModelForSeq2SeqLM.from_pretrained(repo_id, cache_dir=pushed["cache"], revision=revision)
    assert_offline_miss(raised.value)


def test_missing_file_offline_is_the_hubs_error(tmp_path):
    """A repository holding only a tokenizer has no config.json to load a model from."""
    with recording_hub() as hub:
        make_tokenizer("words").push_to_hub("org/tokenizer-only")
    hub.write_cache(tmp_path)
    with pytest.raises(OSError) as raised:
        AutoModelForSeq2SeqLM.from_pretrained("org/tokenizer-only", cache_dir=tmp_path)
    assert_offline_miss(raised.value)


class RunsCodeWhenUnpickled:
    """A pickle payload that would write `ran.txt` if a loader unpickled it unsafely."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_pickled_weights_load_only_as_plain_tensors(tmp_path):
    """The model class has no loading code of its own: transformers reads `pytorch_model.bin` with
    `weights_only=True`, so plain tensors load and a pickle that would run code is refused without running it."""
    model = peaky_model()
    model.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name

    marker = tmp_path / "ran.txt"
    torch.save({**model.state_dict(), "payload": RunsCodeWhenUnpickled(marker)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(Exception, match="(?i)weights only|unpickl|unsupported global"):
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert not marker.exists()
