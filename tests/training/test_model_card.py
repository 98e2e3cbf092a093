"""The filled model card: valid Hub metadata (parsed by huggingface_hub without warnings) holding the run's numbers."""

import logging
import warnings

import pytest
from huggingface_hub import ModelCard
from transformers import Seq2SeqTrainingArguments

from hf_simple_s2s.data import MULTI30K_DIR
from hf_simple_s2s.model_card import write_model_card
from hf_simple_s2s.training.arguments import MainJobArguments


def run_metrics(test_bleu: float) -> dict:
    scores = {
        "validation": {"greedy": dict(bleu=20.5, bleu_lowercase=21.25, chrf=45.0)},
        "test": {
            "greedy": dict(bleu=test_bleu - 1, bleu_lowercase=test_bleu, chrf=50.0),
            "beam4": dict(bleu=test_bleu, bleu_lowercase=test_bleu + 1.5, chrf=51.125),
        },
    }
    return {
        "scores": scores,
        "selected_decoding": "beam4",
        "selected_on": "validation",
        "generation": {"num_beams": 4},
        "num_parameters": 123456,
        "train": {"train_runtime": 61.2},
        "wall_time_s": 99.0,
        "dataset_sizes": {"train": 29000, "validation": 1014, "test": 1000},
        "bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
        "samples": [{"source": "Ein Hund | rennt.", "reference": "A dog runs.", "translation": "A dog is running."}],
    }


@pytest.fixture
def arguments(tmp_path):
    job_args = MainJobArguments(data_dir=str(MULTI30K_DIR), attention_type="luong_general", vocab_size=2000)
    training_args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), num_train_epochs=2, label_smoothing_factor=0.1)
    return job_args, training_args


@pytest.mark.parametrize("test_bleu", [12.34, 31.5])
def test_card_parses_without_warnings_and_holds_the_numbers(tmp_path, arguments, caplog, test_bleu):
    (tmp_path / "plots").mkdir()
    path = write_model_card(tmp_path, *arguments, run_metrics(test_bleu), tmp_path / "plots" / "attention_0.png")
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")
        card = ModelCard.load(path)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []

    data = card.data
    assert data.language == ["de", "en"] and data.library_name == "transformers"
    assert data.datasets == ["bentrevett/multi30k"] and set(data.metrics) == {"bleu", "chrf"}
    results = {result.metric_name: result.metric_value for result in data.eval_results}
    assert results == {"BLEU (sacreBLEU, cased)": test_bleu, "BLEU (lowercased)": test_bleu + 1.5, "chrF": 51.12}
    assert {result.dataset_split for result in data.eval_results} == {"test"}
    assert "model-index" in data.to_dict()

    text = card.text
    assert f"| test | beam4 | {test_bleu:.2f} | {test_bleu + 1.5:.2f} | 51.12 |" in text
    assert "![attention](plots/attention_0.png)" in text
    assert "| lr_scheduler_type | linear |" in text and "| learning_rate | 5e-05 |" in text
    assert "non-commercial research and education" in text.split("## Limitations")[1]
    assert "| Ein Hund \\| rennt. | A dog runs. | A dog is running. |" in text  # pipes escaped in the table
    for citation in ("bahdanau2015neural", "luong2015effective", "elliott2016multi30k"):
        assert citation in text
    assert "{{" not in text and "{%" not in text  # every template field was filled


def test_card_of_a_users_own_corpus_names_it_instead_of_multi30k(tmp_path, arguments):
    job_args, training_args = arguments
    job_args.data_dir = str(tmp_path / "my_corpus")
    card = ModelCard.load(write_model_card(tmp_path, job_args, training_args, run_metrics(10.0)))
    assert card.data.datasets == ["my_corpus"] and "Multi30k" not in card.text.split("## Citations")[0]
    assert "![attention]" not in card.text
    assert "non-commercial" not in card.text
