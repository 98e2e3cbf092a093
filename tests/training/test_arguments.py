"""The job's model arguments come from `SimpleS2SConfig`'s fields: names, types, defaults, choices and help."""

import dataclasses
import json

import pytest

from hf_simple_s2s.models.simple_s2s.configuration_simple_s2s import (
    ATTENTION_TYPES,
    SCHEDULED_SAMPLING_SCHEDULES,
    SimpleS2SConfig,
)
from hf_simple_s2s.training.arguments import (
    CONFIG_FIELDS,
    MODEL_FIELDS,
    MainJobArguments,
    UsageError,
    check_output_dir,
    config_arguments,
    parse_arguments,
    start_output_dir,
)
from hf_simple_s2s.training.main import build_model


def test_every_model_argument_has_the_configs_default_and_reaches_the_model():
    defaults = {field.name: field.default for field in dataclasses.fields(MainJobArguments)}
    config = SimpleS2SConfig()
    assert {"embedding_size", "bidirectional_encoder", "coverage", "scheduled_sampling_k"} <= set(CONFIG_FIELDS)
    assert "label_smoothing" not in CONFIG_FIELDS, "given as --label_smoothing_factor"
    for name in CONFIG_FIELDS:
        assert defaults[name] == getattr(config, name), name
    job_args, _ = parse_arguments(["--no_bidirectional_encoder", "--initializer_range=0.05", "--embedding_size=24"])
    config = build_model(job_args, vocab_size=100, label_smoothing=0.2).config
    assert (config.bidirectional_encoder, config.initializer_range, config.embedding_size) == (False, 0.05, 24)
    assert (config.vocab_size, config.label_smoothing) == (100, 0.2)


@pytest.mark.parametrize(
    "name, choices", [("attention_type", ATTENTION_TYPES), ("scheduled_sampling", SCHEDULED_SAMPLING_SCHEDULES)]
)
def test_choices_are_the_configs(name, choices):
    for choice in choices:
        assert getattr(parse_arguments([f"--{name}={choice}"])[0], name) == choice
    with pytest.raises(UsageError, match="invalid choice: 'other'"):
        parse_arguments([f"--{name}=other"])


def test_a_new_config_field_becomes_an_argument_with_its_comment_as_help():
    class GatedConfig(SimpleS2SConfig):
        gate_size: int = 7  # units of a made-up gate

    (name, type_, field) = config_arguments(GatedConfig)[-1]
    assert (name, type_, field.default, field.metadata["help"]) == ("gate_size", int, 7, "units of a made-up gate")
    helps = {name: field.metadata["help"] for name, _, field in config_arguments()}
    assert helps["hidden_size"] == "per direction in the encoder; the decoder state has this size too"
    assert helps["coverage"].startswith("Coverage (Tu et al. 2016; See et al. 2017)")  # the comment above the field


def test_a_run_folder_saved_before_training_state_existed_is_started_over_with_overwrite(tmp_path):
    job_args, _ = parse_arguments([])
    start_output_dir(tmp_path, job_args)
    (tmp_path / "training_state" / "run_args.json").rename(tmp_path / "run_args.json")  # the older layout
    (tmp_path / "checkpoint-2").mkdir()
    with pytest.raises(UsageError, match="holds a run saved before training_state/ existed; move its checkpoint-"):
        check_output_dir(tmp_path, job_args)
    job_args.overwrite_output_dir = True  # what `make demo` passes
    assert check_output_dir(tmp_path, job_args) is None
    start_output_dir(tmp_path, job_args)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["training_state"]
    assert (tmp_path / "training_state" / "run_args.json").is_file()


def test_a_run_recorded_before_a_field_existed_resumes_with_that_fields_default(tmp_path):
    job_args, _ = parse_arguments(["--resume"])
    start_output_dir(tmp_path, job_args)
    record = json.loads((tmp_path / "training_state" / "run_args.json").read_text())
    assert list(record["model"]) == list(MODEL_FIELDS)
    del record["model"]["bidirectional_encoder"]
    (tmp_path / "training_state" / "run_args.json").write_text(json.dumps(record))
    with pytest.raises(UsageError, match="no complete checkpoint"):  # the same model: only the checkpoint is missing
        check_output_dir(tmp_path, job_args)
    job_args.bidirectional_encoder = False
    with pytest.raises(UsageError, match=r"different model \(bidirectional_encoder=True there, False here\)"):
        check_output_dir(tmp_path, job_args)
