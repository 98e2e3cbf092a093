"""The `simple-s2s-translation` pipeline task: the translations of `generate()`, strings or lists, kwargs passed on;
shared with a saved model, it runs where the package is not installed."""

import json
import shutil

import pytest
from hub_utils import SOURCES, run_fresh_python, tiny_checkpoint, translate
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline
from transformers.pipelines import SUPPORTED_TASKS, get_supported_tasks

from hf_simple_s2s import PIPELINE_TASK, SimpleS2STranslationPipeline
from hf_simple_s2s.inference.pipeline import HUB_TASK, share_pipeline


@pytest.fixture(scope="module")
def checkpoint():
    folder = tiny_checkpoint()
    return folder, AutoModelForSeq2SeqLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def translator(checkpoint):
    return pipeline(PIPELINE_TASK, model=str(checkpoint[0]))


def texts(outputs: list[dict[str, str]]) -> list[str]:
    return [output["translation_text"] for output in outputs]


def test_registered_on_import(translator):
    assert PIPELINE_TASK in get_supported_tasks()
    assert isinstance(translator, SimpleS2STranslationPipeline)


def test_string_gives_one_translation(checkpoint, translator):
    _, model, tokenizer = checkpoint
    assert translator(SOURCES[1], max_new_tokens=10) == [
        {"translation_text": translate(model, tokenizer, [SOURCES[1]])[0]}
    ]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_list_matches_batched_generate(checkpoint, translator, batch_size):
    """One by one or in padded batches of 2, the pipeline gives what one padded `generate()` call gives."""
    _, model, tokenizer = checkpoint
    outputs = translator(SOURCES, batch_size=batch_size, num_workers=0, max_new_tokens=10)
    assert texts(outputs) == translate(model, tokenizer, SOURCES)
    assert translator([], batch_size=batch_size) == []


def test_generation_kwargs_reach_generate(checkpoint, translator):
    _, model, tokenizer = checkpoint
    beam = translator(SOURCES, num_beams=3, max_new_tokens=10)
    assert texts(beam) == translate(model, tokenizer, SOURCES, num_beams=3)
    assert texts(beam) != texts(translator(SOURCES, max_new_tokens=10)), "beam search must change some output"
    short = translator(SOURCES, max_new_tokens=2)
    assert all(len(text.split()) <= 2 for text in texts(short))


def test_several_return_sequences_per_string(checkpoint, translator):
    _, model, tokenizer = checkpoint
    outputs = translator(SOURCES[:2], num_beams=3, num_return_sequences=2, max_new_tokens=10)
    assert [len(per_source) for per_source in outputs] == [2, 2]
    best = [per_source[0]["translation_text"] for per_source in outputs]
    assert best == translate(model, tokenizer, SOURCES[:2], num_beams=3)


@pytest.mark.parametrize("bad_input", [3, ["a b", 4], None])
def test_bad_input_is_a_value_error(translator, bad_input):
    with pytest.raises(ValueError, match="string or a list of strings"):
        translator(bad_input)


def test_a_lone_surrogate_is_translated_as_a_replacement_character(translator):
    """A Python string may hold one (from undecodable bytes); the tokenizer cannot encode it."""
    assert translator(["w5 \udc80 w9"], max_new_tokens=5) == translator(["w5 \ufffd w9"], max_new_tokens=5)


SHARED_PIPELINE = """
import json, sys
from transformers import pipeline
FOLDER, SOURCES = {folder!r}, {sources!r}
report = {{}}
try:
    pipeline(model=FOLDER)
except ValueError as error:
    report["refused_without_trust"] = "trust_remote_code=True" in str(error)
for task in (None, "translation"):
    translator = pipeline(task, model=FOLDER, trust_remote_code=True)
    report[str(task)] = [out["translation_text"] for out in translator(SOURCES, max_new_tokens=10)]
report["pipeline_module"] = type(translator).__module__
report["package_imported"] = sys.modules.get("hf_simple_s2s") is not None
print("REPORT" + json.dumps(report))
"""


def test_the_shared_pipeline_runs_without_the_package(checkpoint, translator, tmp_path):
    """`pipeline(model=folder, trust_remote_code=True)` in a fresh process where the package cannot be imported: the
    task from the config's `custom_pipelines`, the pipeline's code from the folder, the same translations."""
    folder = tmp_path / "model"
    shutil.copytree(checkpoint[0], folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    share_pipeline(model, folder)
    model.save_pretrained(folder)
    assert (folder / "pipeline.py").is_file()
    assert HUB_TASK not in SUPPORTED_TASKS  # transformers 5 removed it: only the model's own pipeline gives it
    assert json.loads((folder / "config.json").read_text())["custom_pipelines"][HUB_TASK]["impl"] == (
        "pipeline.SimpleS2STranslationPipeline"
    )
    expected = [out["translation_text"] for out in translator(SOURCES, max_new_tokens=10)]
    assert [
        out["translation_text"] for out in pipeline(PIPELINE_TASK, model=str(folder))(SOURCES, max_new_tokens=10)
    ] == expected

    code = SHARED_PIPELINE.format(folder=str(folder), sources=SOURCES)
    result = run_fresh_python(code, tmp_path, package_importable=False)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.split("REPORT", 1)[1])
    assert report["refused_without_trust"] is True and report["package_imported"] is False
    assert report["pipeline_module"].startswith("transformers_modules.")
    assert report["None"] == report["translation"] == expected
