"""Scheduled sampling: the schedules, the stepwise training forward, and the callback inside Seq2SeqTrainer."""

import pytest
import torch
from conftest import VOCAB_SIZE, padded_batch, seeded_generator, tiny_model
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

from hf_simple_s2s.models.simple_s2s.modeling_simple_s2s import teacher_forcing_ratio
from hf_simple_s2s.training.callbacks import ScheduledSamplingCallback

SOURCES = [[5, 9, 14, 22, 7, 2], [31, 12, 2], [8, 8, 19, 25, 2]]


def batch():
    input_ids, attention_mask = padded_batch(SOURCES)
    labels = torch.randint(4, VOCAB_SIZE, (3, 6), generator=seeded_generator(3))
    labels[1, 4:] = -100
    return dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


@pytest.mark.parametrize(
    "schedule,k,step,expected",
    [
        ("none", 10.0, 10**6, 1.0),
        ("linear", 100.0, 0, 1.0),
        ("linear", 100.0, 50, 0.5),
        ("linear", 100.0, 500, 0.0),
        ("exponential", 100.0, 0, 1.0),
        ("exponential", 100.0, 100, 0.36787944117144233),  # e^-1
        ("inverse_sigmoid", 10.0, 0, 10 / 11),  # the paper's k / (k + exp(i / k))
        ("inverse_sigmoid", 10.0, 23, 10 / (10 + 9.974182454814718)),  # exp(2.3)
        ("inverse_sigmoid", 10.0, 10**6, 0.0),
    ],
)
def test_schedules(schedule, k, step, expected):
    assert teacher_forcing_ratio(schedule, k, step) == pytest.approx(expected)


@pytest.mark.parametrize("attention_type", ["bahdanau", "luong_general"])
def test_ratio_one_is_bit_identical_to_teacher_forcing(attention_type):
    """A schedule still at ratio 1 (and any schedule outside training) leaves the training forward unchanged."""
    reference = tiny_model(attention_type=attention_type, dropout=0.3).train()
    scheduled = tiny_model(attention_type=attention_type, dropout=0.3, scheduled_sampling="linear").train()
    assert scheduled.set_training_step(0) == 1.0
    torch.manual_seed(0)
    expected = reference(**batch())
    torch.manual_seed(0)
    got = scheduled(**batch())
    assert torch.equal(got.logits, expected.logits) and torch.equal(got.loss, expected.loss)
    scheduled.set_training_step(10**6)  # ratio 0, but evaluation is always teacher forced
    scheduled.eval()
    reference.eval()
    assert torch.equal(scheduled(**batch()).logits, reference(**batch()).logits)


@pytest.mark.parametrize("attention_type", ["bahdanau", "luong_dot"])
@pytest.mark.parametrize("coverage", [False, True])
def test_ratio_zero_feeds_the_models_own_samples(attention_type, coverage):
    """At ratio 0 every input after the start token is a sample from the previous step's prediction: replaying
    the same random draws and teacher forcing those samples must give the same logits."""
    model = tiny_model(attention_type=attention_type, scheduled_sampling="exponential", coverage=coverage).train()
    assert model.set_training_step(10**6) == 0.0
    inputs = batch()
    torch.manual_seed(7)
    logits = model(**inputs).logits  # (3, 6, vocab)
    torch.manual_seed(7)
    fed = [torch.full((3, 1), model.config.decoder_start_token_id)]
    for t in range(logits.shape[1] - 1):
        fed.append(torch.multinomial(logits[:, t].softmax(dim=-1), 1))
        torch.rand((3, 1))  # the coin flip of this step
    model.eval()
    replayed = model(**inputs, decoder_input_ids=torch.cat(fed, dim=1)).logits
    torch.testing.assert_close(replayed, logits)
    assert not torch.equal(torch.cat(fed[1:], 1), model.prepare_decoder_input_ids_from_labels(inputs["labels"])[:, 1:])


def test_training_with_scheduled_sampling_gives_full_outputs_and_gradients():
    model = tiny_model(attention_type="luong_general", scheduled_sampling="inverse_sigmoid", scheduled_sampling_k=2.0)
    model.train().set_training_step(3)
    assert 0 < model.teacher_forcing_ratio < 1
    out = model(**batch(), output_attentions=True, output_hidden_states=True)
    assert out.logits.shape == (3, 6, VOCAB_SIZE)
    assert out.cross_attentions[0].shape == (3, 1, 6, 6)
    assert [h.shape[1] for h in out.decoder_hidden_states] == [6, 6, 6]  # embeddings, then each of the 2 layers
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_callback_drives_the_ratio_inside_seq2seq_trainer(tmp_path, word_tokenizer):
    seen = []

    class RecordRatio(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen.append((state.global_step - 1, model.teacher_forcing_ratio))

    model = tiny_model(attention_type="bahdanau", scheduled_sampling="linear", scheduled_sampling_k=4.0)
    sources = [" ".join(f"w{4 + (i * 7 + j) % 30}" for j in range(3 + i % 3)) for i in range(24)]
    data = Dataset.from_dict(dict(word_tokenizer(sources, text_target=sources)))
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=4,
        learning_rate=1e-3,
        logging_steps=2,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(word_tokenizer, model=model),
        callbacks=[ScheduledSamplingCallback(), RecordRatio()],
    )
    trainer.train()
    assert seen == [(step, max(0.0, 1 - step / 4)) for step in range(4)]
    logged = [entry["teacher_forcing_ratio"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged == [0.75, 0.25]


def test_callback_refuses_another_model():
    with pytest.raises(ValueError, match="needs a SimpleS2SForConditionalGeneration, got Linear"):
        ScheduledSamplingCallback().on_step_begin(
            None, type("S", (), {"global_step": 0})(), None, model=torch.nn.Linear(1, 1)
        )


def test_precomputed_encoder_outputs_give_the_same_sampled_forward():
    model = tiny_model(attention_type="luong_general", scheduled_sampling="linear", scheduled_sampling_k=2.0).train()
    model.set_training_step(1)  # ratio 0.5
    inputs = batch()
    torch.manual_seed(3)
    expected = model(**inputs).logits
    encoder_outputs = model.get_encoder()(inputs["input_ids"], attention_mask=inputs["attention_mask"])
    torch.manual_seed(3)
    as_tuple = model(
        encoder_outputs=encoder_outputs.to_tuple(), attention_mask=inputs["attention_mask"], labels=inputs["labels"]
    )
    torch.testing.assert_close(as_tuple.logits, expected)


def test_sampling_needs_no_labels_so_trainer_label_smoothing_keeps_it():
    """Seq2SeqTrainer's `label_smoothing_factor` passes `decoder_input_ids` without `labels`: the training forward
    must sample all the same, exactly as with labels."""
    model = tiny_model(scheduled_sampling="linear", scheduled_sampling_k=10.0).train()
    model.set_training_step(10)  # ratio 0
    inputs = batch()
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(inputs["labels"])
    torch.manual_seed(7)
    with_labels = model(**inputs).logits
    torch.manual_seed(7)
    without_labels = model(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], decoder_input_ids=decoder_input_ids
    ).logits
    torch.testing.assert_close(without_labels, with_labels)
    model.set_training_step(0)  # ratio 1: teacher forcing
    teacher_forced = model(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], decoder_input_ids=decoder_input_ids
    ).logits
    assert not torch.allclose(teacher_forced, with_labels)
