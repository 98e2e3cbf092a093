"""The main-job script end to end on a few hundred sentences, its arguments, its one-line errors, Ctrl-C and --resume."""

import json
import os
import shutil
import signal
from pathlib import Path

import huggingface_hub.hf_api
import pytest
import torch
from conftest import make_tokenizer
from datasets import Dataset
from hub_utils import REPO_ROOT, RecordingHfApi, recording_hub
from huggingface_hub import ModelCard
from main_job_helpers import GERMAN, NUM_TRAIN, tiny_run_args, write_small_corpus
from safetensors.torch import load_file
from test_docs import CHECKPOINT, REPO_ID, run_block, section_blocks
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, Seq2SeqTrainer
from transformers.integrations import is_tensorboard_available

from hf_simple_s2s.inference.translate import translate
from hf_simple_s2s.training.arguments import MODEL_FIELDS, parse_arguments
from hf_simple_s2s.training.callbacks import StopAfterTime
from hf_simple_s2s.training.checkpoints import HUB_IGNORE_PATTERNS
from hf_simple_s2s.training.main import build_model, main, tokenize_splits, too_short_warning


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_small_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module", params=["untied", "tied"])
def finished_run(data_dir, tmp_path_factory, request):
    """A finished run; tied output embeddings (the full preset's) must survive loading the best checkpoint back."""
    output_dir = tmp_path_factory.mktemp("run") / "model"
    main([*tiny_run_args(data_dir, output_dir), f"--tie_word_embeddings={request.param == 'tied'}"])
    return output_dir


def test_run_writes_every_artefact(finished_run):
    for name in (
        "model.safetensors",
        "config.json",
        "configuration_simple_s2s.py",
        "modeling_simple_s2s.py",
        "generation_config.json",
        "pipeline.py",
        "tokenizer.json",
        "tokenizer_config.json",
        "metrics.json",
        "README.md",
        "plots/attention_0.png",
        "plots/attention_1.png",
    ):
        assert (finished_run / name).is_file(), name
    if is_tensorboard_available():  # the script logs to TensorBoard when it is installed (the dev extra installs it)
        assert list((finished_run / "training_state" / "runs").glob("*/events.out.tfevents.*")), "no TensorBoard log"
    config = json.loads((finished_run / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM"}
    assert set(config["custom_pipelines"]) == {"translation"}  # the card's pipeline_tag


TRAINING_STATE_FILES = ("optimizer.pt", "scheduler.pt", "training_args.bin", "trainer_state.json", "run_args.json")


def is_training_state(path: str) -> bool:
    parts = Path(path).parts
    return (
        parts[0] in ("training_state", "runs")
        or any(part.startswith("checkpoint-") for part in parts)
        or parts[-1] in TRAINING_STATE_FILES
        or parts[-1].endswith((".bin", ".pt", ".pth", ".pkl"))  # pickles
    )


def test_the_output_dir_holds_a_hub_repository_and_the_training_state_in_its_own_folder(finished_run):
    uploadable = [str(path.relative_to(finished_run)) for path in finished_run.rglob("*") if path.is_file()]
    uploadable = [path for path in uploadable if not path.startswith("training_state/")]
    assert "model.safetensors" in uploadable and "README.md" in uploadable
    assert not [path for path in uploadable if is_training_state(path)]
    state = finished_run / "training_state"
    for name in ("optimizer.pt", "training_args.bin", "trainer_state.json"):
        assert (state / "checkpoint-4" / name).is_file(), name
    assert (state / "run_args.json").is_file()
    if is_tensorboard_available():
        assert list((state / "runs").glob("*/events.out.tfevents.*")), "no TensorBoard log"


def test_uploading_the_output_dir_sends_no_training_state(finished_run, tmp_path, monkeypatch):
    """The docs' push (docs/deployment.md, "Share your model") of a run's folder, and `upload_folder` of all of it
    with `HUB_IGNORE_PATTERNS` (card, metrics and plots too), through the recording HfApi."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(finished_run, tmp_path / CHECKPOINT)
    with recording_hub() as hub:
        run_block(next(block for block in section_blocks() if ".push_to_hub(" in block))
    pushed = {recorded.path_in_repo for commit in hub.commits_of(REPO_ID) for recorded in commit.files}
    assert {"model.safetensors", "tokenizer.json"} <= pushed
    assert not [path for path in pushed if is_training_state(path)]

    # upload_folder's single-commit path (without hf_xet) goes through `create_commit`, which the recorder records.
    monkeypatch.setattr(huggingface_hub.hf_api, "is_xet_available", lambda: False)
    hub = RecordingHfApi()
    hub.create_repo("org/whole-folder")
    hub.upload_folder(repo_id="org/whole-folder", folder_path=finished_run, ignore_patterns=list(HUB_IGNORE_PATTERNS))
    pushed = {recorded.path_in_repo for commit in hub.commits_of("org/whole-folder") for recorded in commit.files}
    expected = {"model.safetensors", "config.json", "modeling_simple_s2s.py", "tokenizer.json", "README.md"}
    assert expected | {"metrics.json", "plots/attention_0.png"} <= pushed
    assert not [path for path in pushed if is_training_state(path) or path.startswith(".")]
    deployment = (REPO_ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert f"ignore_patterns={json.dumps(list(HUB_IGNORE_PATTERNS))}" in deployment, "the docs give these patterns"


def test_metrics_hold_greedy_and_beam_scores_and_the_winner_is_the_generation_config(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert set(metrics["scores"][split]) == {"greedy", "beam2"}
        for scores in metrics["scores"][split].values():
            assert set(scores) == {"bleu", "bleu_lowercase", "chrf"}
            assert all(0 <= value <= 100 for value in scores.values())
    validation = metrics["scores"]["validation"]
    assert metrics["selected_decoding"] == max(validation, key=lambda decoding: validation[decoding]["bleu"])
    generation = json.loads((finished_run / "generation_config.json").read_text())
    assert generation.get("num_beams", 1) == (2 if metrics["selected_decoding"] == "beam2" else 1)
    # --max_target_length 10, the decoder start token included, as `max_length` (see the test below)
    assert generation["max_length"] == 10 and "max_new_tokens" not in generation
    assert generation["decoder_start_token_id"] == 1
    assert metrics["dataset_sizes"] == {"train": NUM_TRAIN, "validation": 6, "test": 6}


def test_a_callers_length_limit_replaces_the_saved_one(finished_run):
    # generate() lets a saved `max_new_tokens` win over a caller's `max_length` (Seq2SeqTrainer's
    # generation_max_length): the job saves `max_length`, so either kind of limit from the caller holds.
    model = AutoModelForSeq2SeqLM.from_pretrained(finished_run).eval()
    source = torch.tensor([[5, 6, 7, 8, model.config.eos_token_id]])
    never_ends = dict(num_beams=1, eos_token_id=model.config.vocab_size + 1)  # an id no step can produce
    assert model.generate(source, **never_ends).shape[1] == 10  # --max_target_length 10, decoder start included
    assert model.generate(source, max_length=4, **never_ends).shape[1] == 4
    assert model.generate(source, max_new_tokens=3, **never_ends).shape[1] == 4


def test_the_saved_model_is_the_checkpoint_with_the_best_validation_bleu(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    state = json.loads((finished_run / "training_state" / "checkpoint-4" / "trainer_state.json").read_text())
    evaluations = [entry for entry in state["log_history"] if "eval_bleu" in entry]
    assert [entry["step"] for entry in evaluations] == [2, 4]
    best = max(evaluations, key=lambda entry: entry["eval_bleu"])  # the first of equals, as the Trainer keeps it
    assert metrics["best_checkpoint"].endswith(f"checkpoint-{best['step']}")
    saved = load_file(finished_run / "model.safetensors")
    best_weights = load_file(finished_run / "training_state" / f"checkpoint-{best['step']}" / "model.safetensors")
    assert saved.keys() == best_weights.keys()
    for name, tensor in saved.items():
        torch.testing.assert_close(tensor, best_weights[name], rtol=0, atol=0)


def test_model_card_metadata_holds_the_test_scores(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    card = ModelCard.load(finished_run / "README.md")
    selected = metrics["scores"]["test"][metrics["selected_decoding"]]
    values = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert values["BLEU (sacreBLEU, cased)"] == round(selected["bleu"], 2)
    assert values["chrF"] == round(selected["chrf"], 2)
    assert "![attention](plots/attention_0.png)" in card.text
    # the Hub's task, which the folder's own pipeline runs (transformers 5 has none of that name)
    assert card.data.pipeline_tag == next(
        iter(json.loads((finished_run / "config.json").read_text())["custom_pipelines"])
    )


def test_saved_model_reloads_with_auto_classes_and_translates_as_during_the_run(finished_run, caplog):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(finished_run)
    model = AutoModelForSeq2SeqLM.from_pretrained(finished_run).eval()
    sources = [sample["source"] for sample in metrics["samples"]]
    assert sources == GERMAN[6:8]
    assert translate(sources, model, tokenizer) == [sample["translation"] for sample in metrics["samples"]]
    assert tokenizer.model_max_length == 64  # --max_source_length: where translating cuts a longer source
    caplog.clear()
    translate(sources, model, tokenizer, max_new_tokens=3)  # the CLI's --max_new_tokens
    assert not caplog.records  # no "Both `max_new_tokens` and `max_length` seem to have been set"


def test_presets_fill_in_what_the_command_line_and_file_leave_out(tmp_path):
    job_args, training_args = parse_arguments([])
    assert (job_args.preset, job_args.vocab_size, job_args.attention_type) == ("tiny", 2000, "bahdanau")
    assert training_args.predict_with_generate and training_args.load_best_model_at_end
    assert training_args.metric_for_best_model == "bleu" and training_args.label_smoothing_factor == 0.1

    argument_file = tmp_path / "run.yaml"
    argument_file.write_text("preset: full\nhidden_size: 64\nlearning_rate: 0.0005\n")
    job_args, training_args = parse_arguments([str(argument_file), "--hidden_size", "32"])
    assert (job_args.preset, job_args.embedding_size, job_args.hidden_size) == ("full", 512, 32)
    assert training_args.learning_rate == 0.0005 and training_args.num_train_epochs == 8

    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"num_beams": 3}))
    assert parse_arguments([str(json_file)])[0].num_beams == 3


def test_full_preset_has_the_baseline_layer_sizes_within_its_parameter_count():
    job_args, _ = parse_arguments(["--preset", "full"])
    assert (job_args.embedding_size, job_args.hidden_size, job_args.attention_type) == (512, 512, "bahdanau")
    with torch.device("meta"):
        model = build_model(job_args, vocab_size=job_args.vocab_size)
    assert model.config.bidirectional_encoder and model.config.tie_word_embeddings
    assert 10_000_000 < model.num_parameters() <= 20_500_000  # the published baseline's 20.5M


def test_coverage_and_scheduled_sampling_reach_the_model_and_the_trainer(data_dir, tmp_path):
    options = [
        "--coverage=true",
        "--coverage_loss_weight=0.5",
        "--scheduled_sampling=linear",
        "--scheduled_sampling_k=8",
    ]
    job_args, _ = parse_arguments(options)
    config = build_model(job_args, vocab_size=100).config
    assert (config.coverage, config.coverage_loss_weight) == (True, 0.5)
    assert (config.scheduled_sampling, config.scheduled_sampling_k) == ("linear", 8.0)
    assert build_model(job_args, vocab_size=100, label_smoothing=0.1).config.label_smoothing == 0.1

    output_dir = tmp_path / "model"
    main([*tiny_run_args(data_dir, output_dir), *options])
    saved = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    assert saved.config.coverage and saved.config.scheduled_sampling == "linear"
    assert saved.config.label_smoothing == 0.1, "the preset's label_smoothing_factor, applied by the model"
    trainer_args = torch.load(output_dir / "training_state" / "checkpoint-4" / "training_args.bin", weights_only=False)
    assert trainer_args.label_smoothing_factor == 0.0, "the Trainer's own smoother would take the labels away"
    state = json.loads((output_dir / "training_state" / "checkpoint-4" / "trainer_state.json").read_text())
    ratios = [entry["teacher_forcing_ratio"] for entry in state["log_history"] if "teacher_forcing_ratio" in entry]
    assert ratios and ratios == sorted(ratios, reverse=True) and ratios[-1] < 1.0


def record_training_steps(monkeypatch, before_step=None) -> list[int]:
    """The global step at the start of every training step the Trainer runs from now on, in order."""
    original_training_step = Seq2SeqTrainer.training_step
    steps_run = []

    def training_step(self, *args, **kwargs):
        steps_run.append(self.state.global_step)
        if before_step is not None:
            before_step(self.state.global_step)
        return original_training_step(self, *args, **kwargs)

    monkeypatch.setattr(Seq2SeqTrainer, "training_step", training_step)
    return steps_run


def run_expecting_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("simple-s2s-train: error: ") and error.count("\n") == 1, error
    return error


def test_training_pairs_cut_sources_and_targets_each_at_their_own_length():
    tokenizer = make_tokenizer("words")
    source, target = "w5 w6 w7 w8 w9 w10", "w11 w12 w13 w14 w15 w16 w17 w18"
    pair = {"translation": [{"de": source, "en": target}]}
    splits = {name: Dataset.from_dict(pair) for name in ("train", "validation")}
    for source_length, target_length in ((3, 9), (9, 3)):
        job_args, _ = parse_arguments([f"--max_source_length={source_length}", f"--max_target_length={target_length}"])
        for split in tokenize_splits(splits, tokenizer, job_args).values():
            # Each side keeps as many words as fit beside its `</s>`.
            assert split[0]["input_ids"] == tokenizer(" ".join(source.split()[: source_length - 1]))["input_ids"]
            assert (
                split[0]["labels"] == tokenizer(text_target=" ".join(target.split()[: target_length - 1]))["input_ids"]
            )


def test_unknown_preset_argument_and_file_key_get_one_line_errors(tmp_path, capsys):
    assert "unknown preset 'huge'" in run_expecting_error(["--preset", "huge"], capsys)
    assert "unknown argument '--hidden_sise'" in run_expecting_error(["--hidden_sise", "4"], capsys)
    assert "invalid choice: 'dot'" in run_expecting_error(["--attention_type", "dot"], capsys)
    argument_file = tmp_path / "run.yaml"
    argument_file.write_text("hidden_sise: 4\n")
    assert "unknown argument 'hidden_sise' in the argument file" in run_expecting_error([str(argument_file)], capsys)


def test_data_errors_name_the_file(tmp_path, capsys):
    (tmp_path / "train.de").write_text("a\nb\n")
    (tmp_path / "train.en").write_text("A\n")
    error = run_expecting_error([f"--data_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}"], capsys)
    assert "train.de has 2 lines but" in error and "train.en has 1" in error
    error = run_expecting_error([f"--data_dir={tmp_path / 'nowhere'}", f"--output_dir={tmp_path / 'out'}"], capsys)
    assert f"data folder not found: {tmp_path / 'nowhere'}" in error
    assert not (tmp_path / "out").exists()


def test_a_language_not_in_the_data_is_refused(data_dir, tmp_path, capsys):
    error = run_expecting_error([f"--data_dir={data_dir}", "--source_lang=fr", f"--output_dir={tmp_path}/o"], capsys)
    assert "no 'fr' text in" in error and "train.fr is missing" in error and "['de', 'en']" in error


def test_a_run_too_short_to_learn_is_warned_about():
    training_args = parse_arguments(["--max_steps=4"])[1]
    pairs = Dataset.from_dict({"labels": [[5] * 15] * NUM_TRAIN})
    warning = too_short_warning(pairs, 200, training_args)
    assert warning.startswith(f"4 training steps over {NUM_TRAIN} pairs see each of the 200 vocabulary entries")
    multi30k_tiny = parse_arguments([])[1]  # the tiny preset on all of Multi30k learns: no warning
    assert too_short_warning(Dataset.from_dict({"labels": [[5] * 15] * 29_000}), 2000, multi30k_tiny) is None


def test_an_output_dir_holding_something_else_is_refused(tmp_path, capsys):
    other_run = tmp_path / "other"
    (other_run / "training_state").mkdir(parents=True)
    job_args, _ = parse_arguments([])
    fingerprint = {name: getattr(job_args, name) for name in MODEL_FIELDS} | {"hidden_size": 999}
    (other_run / "training_state" / "run_args.json").write_text(json.dumps({"model": fingerprint}))
    error = run_expecting_error([f"--output_dir={other_run}"], capsys)
    assert f"{other_run} already holds a different model (hidden_size=999 there, 128 here)" in error
    older = tmp_path / "older"  # a run saved before training_state/: its run_args.json and checkpoints at the top
    older.mkdir()
    (older / "run_args.json").write_text(json.dumps({"model": fingerprint}))
    error = run_expecting_error([f"--output_dir={older}", "--resume"], capsys)
    assert f"{older} holds a run saved before training_state/ existed; move its checkpoint-* folders" in error

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    assert "is not empty and holds no run of this script" in run_expecting_error([f"--output_dir={foreign}"], capsys)
    assert (foreign / "config.json").read_text() == "{}"


def test_an_output_dir_that_is_a_file_or_read_only_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert f"--output_dir {a_file} is a file, not a folder" in run_expecting_error([f"--output_dir={a_file}"], capsys)
    below_a_file = a_file / "model"
    assert f"cannot write --output_dir {below_a_file}: " in run_expecting_error(
        [f"--output_dir={below_a_file}"], capsys
    )
    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o500)
    # root writes into a 0o500 folder; sysfs is read-only for everyone
    target = read_only / "model" if not os.access(read_only, os.W_OK) else Path("/sys/simple-s2s-model")
    assert f"cannot write --output_dir {target}: " in run_expecting_error([f"--output_dir={target}"], capsys)


def test_ctrl_c_keeps_a_checkpoint_and_resume_continues_it(data_dir, tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "model"
    interrupt_at_step = 2  # the third step

    def press_ctrl_c_during(step):
        if step == interrupt_at_step:
            signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C during this step

    steps_run = record_training_steps(monkeypatch, before_step=press_ctrl_c_during)
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_run_args(data_dir, output_dir, max_steps=6))
    assert exit_info.value.code == 130
    assert steps_run == [0, 1, 2]
    checkpoint = output_dir / "training_state" / "checkpoint-3"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 3
    assert not (output_dir / "model.safetensors").exists()  # the run did not finish
    assert "--resume" in capsys.readouterr().err

    error = run_expecting_error(tiny_run_args(data_dir, output_dir, max_steps=6), capsys)
    assert "already holds this run; pass --resume" in error

    steps_run.clear()
    interrupt_at_step = None
    main([*tiny_run_args(data_dir, output_dir, max_steps=6), "--resume"])
    assert steps_run == [3, 4, 5]  # continued, not restarted
    assert (output_dir / "model.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_max_train_minutes_ends_training_with_an_evaluated_checkpoint(data_dir, tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "model"
    steps_run = record_training_steps(monkeypatch)
    monkeypatch.setattr(StopAfterTime, "clock", staticmethod(lambda: 20.0 * len(steps_run)))  # 20 s a step
    main([*tiny_run_args(data_dir, output_dir, max_steps=7), "--max_train_minutes=1"])
    assert steps_run == [0, 1, 2]  # the third step reaches 60 s
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["stopped_by_time_limit_at_step"] == 3 and metrics["planned_steps"] == 7
    state = json.loads((output_dir / "training_state" / "checkpoint-3" / "trainer_state.json").read_text())
    assert any("eval_bleu" in entry and entry["step"] == 3 for entry in state["log_history"])  # off eval_steps=2
    assert (output_dir / "model.safetensors").is_file()

    capsys.readouterr()
    assert "--max_train_minutes must be > 0, got 0.0" in run_expecting_error(["--max_train_minutes=0"], capsys)


@pytest.mark.slow
def test_tiny_preset_learns_to_translate(tmp_path):
    """The default preset on all of Multi30k (several minutes): `pytest -m slow tests/training/test_main.py`."""
    main([f"--output_dir={tmp_path / 'tiny'}", "--disable_tqdm=true"])
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    assert metrics["scores"]["test"]["greedy"]["bleu"] > 15
    assert metrics["scores"]["test"][metrics["selected_decoding"]]["bleu_lowercase"] > 17  # 21 on the CPU measured
