"""Checkpoint averaging: the mean of every tensor, tied weights kept tied, checkpoints picked last or best, the
saved folder checksummed; the main job's --average_checkpoints keeps what it needs and the better model."""

import json

import pytest
import torch
from conftest import make_tokenizer, tiny_model
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

from hf_simple_s2s.training.averaging import average_checkpoints, main, save_average, select_checkpoints
from hf_simple_s2s.training.checkpoints import CHECKSUMS_NAME, check_saved_folder
from hf_simple_s2s.training.main import main as train

SCORES = {100: 3.0, 200: 9.0, 300: 5.0, 400: 7.0}  # eval_bleu logged at each step


def fake_run(directory, tie_word_embeddings: bool = False):
    """A run's output folder: one checkpoint per step of SCORES, each a different model, and the trainer state."""
    log_history = [{"step": step, "eval_bleu": score, "eval_loss": 10 - score} for step, score in SCORES.items()]
    for seed, step in enumerate(SCORES):
        folder = directory / f"checkpoint-{step}"
        tiny_model(seed, tie_word_embeddings=tie_word_embeddings).save_pretrained(folder)
        make_tokenizer("words").save_pretrained(folder)
        state = {"global_step": step, "log_history": [entry for entry in log_history if entry["step"] <= step]}
        (folder / "trainer_state.json").write_text(json.dumps(state))
    (directory / "checkpoint-500").mkdir()  # cut off while being saved: no trainer state, never averaged
    return directory


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.mark.parametrize("tie_word_embeddings", [False, True])
def test_the_average_of_one_checkpoint_is_that_checkpoint(tmp_path, tie_word_embeddings):
    run = fake_run(tmp_path / "run", tie_word_embeddings)
    save_average([str(run / "checkpoint-200")], str(tmp_path / "averaged"))
    torch.testing.assert_close(weights(tmp_path / "averaged"), weights(run / "checkpoint-200"), rtol=0, atol=0)


@pytest.mark.parametrize("tie_word_embeddings", [False, True])
def test_the_average_is_the_mean_of_every_tensor_and_ties_stay(tmp_path, tie_word_embeddings):
    run = fake_run(tmp_path / "run", tie_word_embeddings)
    folders = [run / "checkpoint-100", run / "checkpoint-300", run / "checkpoint-400"]
    save_average([str(folder) for folder in folders], str(tmp_path / "averaged"))
    saved = weights(tmp_path / "averaged")
    expected = {name: sum(weights(folder)[name].double() for folder in folders) / 3 for name in weights(folders[0])}
    assert saved.keys() == expected.keys()
    assert sum(not torch.equal(weights(folders[0])[name], weights(folders[1])[name]) for name in expected) > 10
    for name, tensor in expected.items():
        torch.testing.assert_close(saved[name], tensor.float(), rtol=0, atol=1e-7)

    check_saved_folder(str(tmp_path / "averaged"))  # the checksums match the weights
    assert (tmp_path / "averaged" / CHECKSUMS_NAME).is_file()
    assert (tmp_path / "averaged" / "tokenizer.json").is_file()
    averaged = average_checkpoints([str(folder) for folder in folders])
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "averaged")
    for model in (averaged, loaded):
        assert (model.lm_head.weight is model.model.decoder.embed_tokens.weight) == tie_word_embeddings


@pytest.mark.parametrize(
    "k, best, metric, greater_is_better, expected",
    [
        (2, False, "eval_bleu", True, [300, 400]),
        (4, False, "eval_bleu", True, [100, 200, 300, 400]),
        (2, True, "eval_bleu", True, [200, 400]),
        (3, True, "eval_loss", False, [200, 300, 400]),
        (1, True, "eval_loss", True, [100]),
    ],
)
def test_the_last_or_best_complete_checkpoints_are_picked(tmp_path, k, best, metric, greater_is_better, expected):
    run = fake_run(tmp_path)
    picked = select_checkpoints(str(run), k, best, metric, greater_is_better)
    assert picked == [str(run / f"checkpoint-{step}") for step in expected]


@pytest.mark.parametrize(
    "k, metric, message",
    [
        (5, "eval_bleu", "holds 4 complete checkpoints, fewer than the 5"),
        (0, "eval_bleu", ">= 1, got 0"),
        (2, "eval_chrf", "no 'eval_chrf' logged"),
    ],
)
def test_impossible_selections_are_refused(tmp_path, k, metric, message):
    with pytest.raises(ValueError, match=message):
        select_checkpoints(str(fake_run(tmp_path)), k, best=True, metric=metric)


def test_command_line(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    main([str(run), "--best", "2"])
    assert "checkpoint-200, checkpoint-400" in capsys.readouterr().out
    expected = tmp_path / "expected"
    save_average([str(run / "checkpoint-200"), str(run / "checkpoint-400")], str(expected))
    torch.testing.assert_close(weights(run / "averaged-best-2"), weights(expected), rtol=0, atol=0)
    with pytest.raises(SystemExit):
        main([str(run), "--last", "9"])
    assert "fewer than the 9" in capsys.readouterr().err


def test_main_job_keeps_the_checkpoints_to_average_and_the_better_model(tmp_path):
    output_dir = tmp_path / "run"
    train(
        [
            f"--output_dir={output_dir}",
            "--max_train_samples=200",
            "--max_eval_samples=8",
            "--max_test_samples=4",
            "--vocab_size=200",
            "--embedding_size=16",
            "--hidden_size=16",
            "--max_steps=6",
            "--eval_steps=2",
            "--save_steps=2",
            "--per_device_train_batch_size=32",
            "--max_target_length=10",
            "--num_beams=2",
            "--num_samples=1",
            "--torch_threads=1",
            "--disable_tqdm=true",
            "--average_checkpoints=3",  # more than the default save_total_limit of 2
        ]
    )
    averaging = json.loads((output_dir / "metrics.json").read_text())["checkpoint_averaging"]
    assert averaging["checkpoints"] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert averaging["metric"] == "eval_bleu"
    better = averaging["averaged"] > averaging["best_checkpoint"]
    assert averaging["kept"] == ("averaged" if better else "best_checkpoint")
    checkpoints = [output_dir / "training_state" / f"checkpoint-{step}" for step in (2, 4, 6)]
    if better:
        save_average([str(folder) for folder in checkpoints], str(tmp_path / "expected"))
        expected = weights(tmp_path / "expected")
    else:
        best = json.loads((checkpoints[-1] / "trainer_state.json").read_text())["best_model_checkpoint"]
        expected = load_file(f"{best}/model.safetensors")
    torch.testing.assert_close(weights(output_dir), expected, rtol=0, atol=0)

    # The command line takes the run folder (the checkpoints are in its training_state/) and saves beside them.
    main([str(output_dir), "--last", "2"])
    save_average([str(folder) for folder in checkpoints[-2:]], str(tmp_path / "last-2"))
    averaged = output_dir / "training_state" / "averaged-last-2"
    torch.testing.assert_close(weights(averaged), weights(tmp_path / "last-2"), rtol=0, atol=0)
