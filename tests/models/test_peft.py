"""LoRA with PEFT, as README.md shows it: `TaskType.SEQ_2_SEQ_LM` on the linear layers, trained by `Seq2SeqTrainer`,
then merged, saved and reloaded (or the adapter saved alone and put back on the base model)."""

import pytest
import torch
from conftest import GEN, SOURCES, make_tokenizer, padded_batch, tiny_model
from reversal_task import reversal_examples
from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

peft = pytest.importorskip("peft")

# The attention's query and key projections, the bridge and the output layer; PEFT cannot wrap the GRUs' weights
# (README: train them in full with `modules_to_save=["gru"]`, or leave them frozen).
LORA_TARGETS = ["query_proj", "key_proj", "bridge", "output_proj"]


def lora_model(save_base_to=None):
    base = tiny_model(initializer_range=0.3)
    if save_base_to is not None:  # before PEFT puts its layers into it
        base.save_pretrained(save_base_to)
    config = peft.LoraConfig(task_type=peft.TaskType.SEQ_2_SEQ_LM, r=4, lora_alpha=16, target_modules=LORA_TARGETS)
    return base, peft.get_peft_model(base, config)


def train_a_few_steps(model, tmp_path) -> None:
    tokenizer = make_tokenizer("words")  # the ids of the reversal task are its words
    arguments = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=6,
        per_device_train_batch_size=8,
        learning_rate=5e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        label_names=["labels"],
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=arguments,
        train_dataset=reversal_examples(48, seed=1, min_len=3, max_len=6),
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
    )
    trainer.train()


def test_lora_trains_only_the_adapters_then_merges_saves_and_reloads(tmp_path):
    base, model = lora_model()
    frozen = {name: p.detach().clone() for name, p in base.named_parameters() if "lora_" not in name}
    train_a_few_steps(model, tmp_path)
    assert all(torch.equal(p, frozen[n]) for n, p in base.named_parameters() if "lora_" not in n), "base moved"
    lora_weights = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_weights and all(p.abs().sum() > 0 for p in lora_weights), "the adapters did not train"

    input_ids, attention_mask = padded_batch(SOURCES)
    model.eval()
    adapted = model.generate(input_ids=input_ids, attention_mask=attention_mask, **GEN)
    adapted_logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=adapted).logits

    merged = model.merge_and_unload()
    # PEFT compares the *encoder's* embedding with the output layer, which is tied to the decoder's, and switches
    # `tie_word_embeddings` off; the output layer is still the decoder embedding, so put the flag back (README).
    merged.config.tie_word_embeddings = True
    merged.save_pretrained(tmp_path / "merged")
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "merged")
    assert "lora" not in " ".join(name for name, _ in reloaded.named_parameters())
    logits = reloaded(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=adapted).logits
    torch.testing.assert_close(logits, adapted_logits, atol=1e-5, rtol=1e-4)
    assert torch.equal(reloaded.generate(input_ids=input_ids, attention_mask=attention_mask, **GEN), adapted)


def test_the_adapter_saved_alone_goes_back_on_the_base_model(tmp_path):
    _, model = lora_model(save_base_to=tmp_path / "base")
    train_a_few_steps(model, tmp_path)
    model.save_pretrained(tmp_path / "adapter")  # the adapter weights only
    input_ids, attention_mask = padded_batch(SOURCES)
    model.eval()
    expected = model.generate(input_ids=input_ids, attention_mask=attention_mask, **GEN)

    restored = peft.PeftModel.from_pretrained(
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "base"), tmp_path / "adapter"
    ).eval()
    assert torch.equal(restored.generate(input_ids=input_ids, attention_mask=attention_mask, **GEN), expected)


def test_saving_a_model_whose_tie_was_switched_off_in_memory_fails_loudly(tmp_path):
    """What happens if the flag is not put back: the output layer and the decoder embedding are one tensor that
    the config says are two. Saving refuses (transformers' check) rather than writing a file that would reload with
    a random output layer."""
    _, model = lora_model()
    merged = model.merge_and_unload()
    assert merged.config.tie_word_embeddings is False, "PEFT no longer switches the flag: simplify README and test"
    with pytest.raises(RuntimeError, match="shared tensors"):
        merged.save_pretrained(tmp_path / "merged")
