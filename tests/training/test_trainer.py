"""Seq2SeqTrainer end to end: DataCollatorForSeq2Seq, predict_with_generate, a task the model must really learn."""

import random

import numpy as np
import torch
from conftest import VOCAB_SIZE, tiny_config
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, set_seed

from hf_simple_s2s import SimpleS2SForConditionalGeneration


def reversal_dataset(tokenizer, size: int, seed: int) -> Dataset:
    """Sentences of 3-6 random words and their reversal: solved only by attending to the right source word."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(4, VOCAB_SIZE)]
    sources = [" ".join(rng.choices(words, k=rng.randint(3, 6))) for _ in range(size)]
    targets = [" ".join(reversed(s.split())) for s in sources]
    encoded = tokenizer(sources, text_target=targets)
    return Dataset.from_dict(dict(encoded))


def test_trainer_learns_sequence_reversal(tmp_path, word_tokenizer):
    set_seed(0)
    model = SimpleS2SForConditionalGeneration(
        tiny_config(
            embedding_size=32,
            hidden_size=64,
            encoder_layers=1,
            decoder_layers=1,
            dropout=0.0,
            attention_type="luong_general",
        )
    )
    train = reversal_dataset(word_tokenizer, 2000, seed=1)
    test = reversal_dataset(word_tokenizer, 200, seed=2)
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=50,
        per_device_eval_batch_size=100,
        learning_rate=1e-2,
        num_train_epochs=5,
        max_grad_norm=1.0,
        predict_with_generate=True,
        generation_max_length=10,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )

    def exact_match(prediction):
        predictions = np.where(prediction.predictions < 0, 0, prediction.predictions)
        labels = np.where(prediction.label_ids < 0, 0, prediction.label_ids)
        decoded = word_tokenizer.batch_decode(predictions, skip_special_tokens=True)
        references = word_tokenizer.batch_decode(labels, skip_special_tokens=True)
        return {"exact_match": float(np.mean([p.strip() == r.strip() for p, r in zip(decoded, references)]))}

    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test,
        data_collator=DataCollatorForSeq2Seq(word_tokenizer, model=model),
        processing_class=word_tokenizer,
        compute_metrics=exact_match,
    )
    before = trainer.evaluate()["eval_exact_match"]
    trainer.train()
    after = trainer.evaluate()["eval_exact_match"]
    assert before < 0.05
    assert after >= 0.9, after
    # The trained model reverses a sentence it never saw, through plain generate() as a user calls it.
    batch = word_tokenizer(["w5 w17 w30 w8"], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=10)
    assert word_tokenizer.decode(out[0], skip_special_tokens=True) == "w8 w30 w17 w5"
