"""The `simple-s2s-translation` pipeline task: the translations of `generate()`, strings or lists, kwargs passed on."""

import pytest
from hub_utils import (
    SOURCES,
    tiny_checkpoint,
    translate,
)
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline
from transformers.pipelines import get_supported_tasks

from hf_simple_s2s import PIPELINE_TASK, SimpleS2STranslationPipeline


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
