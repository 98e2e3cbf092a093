"""The main job's presets: the values a run starts from, under the argument file and the command line."""

import os
from typing import Any

import torch
from transformers.integrations import is_tensorboard_available

# Values not given on the command line or in a file come from the preset, then from the common training defaults,
# then from the dataclass defaults (the model's: `SimpleS2SConfig`'s).
PRESETS: dict[str, dict[str, Any]] = {
    # Two CPU cores, under 5 minutes: a small Bahdanau model on all of Multi30k for 2.5 epochs.
    "tiny": dict(
        output_dir="outputs/multi30k-tiny",
        # Matrices this small gain nothing from a second thread; on a shared 2-core machine one thread measured
        # ~6x faster per training step than two.
        torch_threads=1,
        vocab_size=2000,
        embedding_size=96,
        hidden_size=128,
        # Luong general trains ~1.7x faster per step (no per-step loop) but its attention saturates to one-hot at this
        # size: 13.1 test BLEU (lower-cased, beam) in 3 epochs, against 24.4 for Bahdanau in 2.5 (docs/training.md).
        attention_type="bahdanau",
        tie_word_embeddings=False,  # in short runs an untied output layer learned faster (lower validation loss)
        dropout=0.1,
        num_beams=4,
        num_train_epochs=2.5,  # ~4 min of training on an idle 2-core CPU (9.6 steps/s), ~4.4 min for `make demo`
        per_device_train_batch_size=32,  # 64 (half the updates) stalled at 3 BLEU: the number of updates matters here
        per_device_eval_batch_size=100,
        learning_rate=3e-3,  # with Luong, 1e-2 lowered the loss faster at first, then the attention collapsed
        warmup_steps=0.05,
        eval_steps=900,
        save_steps=900,
        logging_steps=50,
    ),
    # The classic Multi30k baseline's layers (bi-GRU 512, decoder 512, Bahdanau attention) with 512-wide embeddings:
    # 16.9M parameters, under the baseline's 20.5M. Chosen on validation (docs/training.md): emb 512, dropout 0.4 and
    # lr 2e-3 for 8 epochs gave 41.17 validation / 41.06 test lower-cased BLEU (beam 5, seed 42), against 39.30 test
    # for emb 256, dropout 0.3, lr 1e-3 in 15 epochs; 8 epochs (1,816 steps) fit in under an hour on 2 CPU cores.
    "full": dict(
        output_dir="outputs/multi30k-full",
        vocab_size=8000,
        embedding_size=512,
        hidden_size=512,
        attention_type="bahdanau",
        dropout=0.4,
        num_beams=5,
        num_train_epochs=8,
        per_device_train_batch_size=128,
        per_device_eval_batch_size=128,
        learning_rate=2e-3,
        warmup_steps=0.03,
        eval_steps=500,
        save_steps=500,
        logging_steps=50,
    ),
}
# The same for every preset: the recipe itself.
COMMON_TRAINING_DEFAULTS: dict[str, Any] = dict(
    eval_strategy="steps",
    save_strategy="steps",
    save_total_limit=2,
    load_best_model_at_end=True,
    metric_for_best_model="bleu",
    greater_is_better=True,
    predict_with_generate=True,
    generation_num_beams=1,  # greedy while training keeps evaluation cheap; beams are compared at the end
    label_smoothing_factor=0.1,  # applied by the model itself (`SimpleS2SConfig.label_smoothing`), see main
    max_grad_norm=1.0,
    lr_scheduler_type="linear",
    train_sampling_strategy="group_by_length",
    report_to="tensorboard" if is_tensorboard_available() else "none",
    seed=42,
    dataloader_pin_memory=torch.cuda.is_available(),
    # Started by torchrun / `accelerate launch --multi_gpu` on a machine without a GPU: accelerate sets up gloo
    # data parallelism only with `use_cpu` (otherwise each process trains its own copy into the same folder).
    use_cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1,
)

__all__ = ["COMMON_TRAINING_DEFAULTS", "PRESETS"]
