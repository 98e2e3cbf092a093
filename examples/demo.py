"""A short demo: train a tiny SimpleS2S to reverse word sequences, beam-search, save and reload it."""

import random
import tempfile

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    PreTrainedTokenizerFast,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    set_seed,
)

from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration

WORDS = [f"w{i}" for i in range(4, 40)]


def word_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{w: i for i, w in enumerate(WORDS, start=4)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def reversal_data(tokenizer, size: int, seed: int) -> Dataset:
    rng = random.Random(seed)
    sources = [" ".join(rng.choices(WORDS, k=rng.randint(3, 6))) for _ in range(size)]
    targets = [" ".join(reversed(s.split())) for s in sources]
    return Dataset.from_dict(dict(tokenizer(sources, text_target=targets)))


def main():
    set_seed(0)
    tokenizer = word_tokenizer()
    config = SimpleS2SConfig(
        vocab_size=len(tokenizer), embedding_size=32, hidden_size=64, dropout=0.0, attention_type="luong_general"
    )
    model = SimpleS2SForConditionalGeneration(config)
    with tempfile.TemporaryDirectory() as output_dir:
        args = Seq2SeqTrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=50,
            learning_rate=1e-2,
            num_train_epochs=5,
            report_to=[],
            save_strategy="no",
            logging_steps=50,
            use_cpu=True,
        )
        trainer = Seq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=reversal_data(tokenizer, 2000, seed=1),
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
            processing_class=tokenizer,
        )
        trainer.train()

        sentences = ["w5 w17 w30 w8", "w12 w13 w14", "w39 w4 w22 w22 w9"]
        batch = tokenizer(sentences, return_tensors="pt", padding=True)
        model.eval()
        with torch.no_grad():
            beams = model.generate(**batch, num_beams=5, max_new_tokens=10)
        for source, output in zip(sentences, tokenizer.batch_decode(beams, skip_special_tokens=True)):
            print(f"{source:<22} -> {output}")

        model.save_pretrained(output_dir + "/model")
        reloaded = AutoModelForSeq2SeqLM.from_pretrained(output_dir + "/model")
        same = torch.equal(reloaded.generate(**batch, num_beams=5, max_new_tokens=10), beams)
        print(f"saved, reloaded, and the reloaded model gives identical beams: {same}")


if __name__ == "__main__":
    main()
