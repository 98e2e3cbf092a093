"""Small real data and a tiny untrained model saved with the test tokenizer, for the main-job and translation tests."""

import json
from pathlib import Path

import torch
from conftest import make_tokenizer, multi30k_sample

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from hf_simple_s2s.data import MULTI30K_DIR, read_lines

GERMAN = multi30k_sample("de")
ENGLISH = multi30k_sample("en")
NUM_TRAIN = 240


def write_small_corpus(folder: Path) -> Path:
    """A user's corpus in all three formats: train as a text pair, validation as TSV, test as JSON lines."""
    (folder / "train.de").write_text("\n".join(read_lines(MULTI30K_DIR / "train.de.gz")[:NUM_TRAIN]) + "\n")
    (folder / "train.en").write_text("\n".join(read_lines(MULTI30K_DIR / "train.en.gz")[:NUM_TRAIN]) + "\n")
    (folder / "val.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in zip(GERMAN[:6], ENGLISH[:6], strict=True)))
    records = [json.dumps({"de": s, "en": t}) for s, t in zip(GERMAN[6:12], ENGLISH[6:12], strict=True)]
    (folder / "test.jsonl").write_text("\n".join(records) + "\n")
    return folder


def tiny_run_args(data_dir, output_dir, max_steps: int = 4) -> list[str]:
    """The main job on `write_small_corpus` with a model of a few thousand parameters: seconds per run."""
    return [
        f"--data_dir={data_dir}",
        f"--output_dir={output_dir}",
        "--vocab_size=200",
        "--embedding_size=16",
        "--hidden_size=16",
        f"--max_steps={max_steps}",
        "--eval_steps=2",
        "--save_steps=2",
        "--logging_steps=2",
        "--per_device_train_batch_size=32",
        "--max_target_length=10",
        "--num_beams=2",
        "--num_samples=2",
        "--torch_threads=1",
        "--disable_tqdm=true",
    ]


def tiny_translation_model(vocab_size: int, seed: int = 0, **overrides) -> SimpleS2SForConditionalGeneration:
    torch.manual_seed(seed)
    values = dict(vocab_size=vocab_size, embedding_size=16, hidden_size=16, dropout=0.0)
    config = SimpleS2SConfig(**{**values, **overrides})
    return SimpleS2SForConditionalGeneration(config).eval()


def save_tiny_translator(directory: Path, **overrides) -> Path:
    """An untrained model and the Multi30k test tokenizer, saved together as `simple-s2s-train` would."""
    tokenizer = make_tokenizer("multi30k")
    model = tiny_translation_model(len(tokenizer), **overrides)
    model.generation_config.max_new_tokens = 11  # an untrained model never stops on its own
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
