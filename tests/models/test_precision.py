"""fp32, bf16 and fp16 on CPU: outputs keep the model's dtype, stay finite and agree with fp32 where the fp32
margins leave room for the rounding; autocast training; `model.to(device)` and `device_map="auto"`."""

import pytest
import torch
from conftest import seeded_generator, tiny_model
from reversal_task import loss_curve, make_trainer

from hf_simple_s2s import SimpleS2SForConditionalGeneration

LOW_PRECISION = [torch.bfloat16, torch.float16]


def confident_model(attention_type: str, dtype: torch.dtype = torch.float32) -> SimpleS2SForConditionalGeneration:
    """A tiny model with large weights and a scaled-up output layer, so that its greedy choices have margins worth
    comparing."""
    model = tiny_model(seed=3, attention_type=attention_type, tie_word_embeddings=False, initializer_range=0.5)
    with torch.no_grad():
        model.lm_head.weight.mul_(5)
    return model.to(dtype)


def source_batch(batch_size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = seeded_generator(seed)
    input_ids = torch.randint(4, 40, (batch_size, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[::2, :3] = 0  # half the rows left-padded
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_low_precision_keeps_dtype_and_agrees_with_fp32(dtype, attention_type):
    input_ids, attention_mask = source_batch()
    reference_model, model = confident_model(attention_type), confident_model(attention_type, dtype)
    reference = reference_model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=8,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
    )
    decoder_input_ids = reference.sequences[:, :-1]
    with torch.no_grad():
        reference_logits = reference_model(input_ids, attention_mask, decoder_input_ids).logits
        outputs = model(input_ids, attention_mask, decoder_input_ids, output_attentions=True)

    # Nothing is silently computed or returned in another precision.
    assert outputs.logits.dtype == dtype
    assert outputs.encoder_last_hidden_state.dtype == dtype
    assert all(layer.recurrent_states[0].dtype == dtype for layer in outputs.cache.self_attention_cache.layers)
    assert outputs.cross_attentions[0].dtype == dtype
    assert torch.isfinite(outputs.logits).all()
    error = (outputs.logits.float() - reference_logits).abs().max().item()
    assert error < 0.05 * reference_logits.abs().max().item()

    # Along the fp32 greedy path, a step whose top-1 beats the runner-up by more than twice the largest logit error
    # cannot change its choice: every sequence made only of such steps must come out identical.
    scores = torch.stack(reference.scores, dim=1)  # (batch, steps, vocab)
    top_two = scores.topk(2, dim=-1).values
    safe = ((top_two[..., 0] - top_two[..., 1]) > 2 * error).all(dim=-1)  # (batch,)
    assert safe.sum() >= 4, "too few confident sequences for the comparison to mean anything"
    generated = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8, do_sample=False)
    assert torch.equal(generated[safe], reference.sequences[safe])


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_low_precision_loss_is_finite_float32(dtype):
    model = confident_model("bahdanau", dtype)
    input_ids, attention_mask = source_batch()
    labels = torch.randint(4, 40, (32, 6))
    labels[:, -2:] = -100
    loss = model(input_ids, attention_mask, labels=labels).loss
    assert loss.dtype == torch.float32  # the cross-entropy alone is taken in fp32, on purpose
    assert torch.isfinite(loss)
    loss.backward()
    assert all(
        p.grad.dtype == dtype and torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None
    )


def test_bf16_autocast_training_tracks_fp32(tmp_path):
    """`Seq2SeqTrainingArguments(bf16=True)` on CPU (autocast): finite losses that follow the fp32 run closely."""
    fp32 = make_trainer(str(tmp_path / "fp32"), max_steps=8, save_steps=100)
    fp32.train()
    bf16 = make_trainer(str(tmp_path / "bf16"), max_steps=8, save_steps=100, bf16=True)
    bf16.train()
    fp32_losses, bf16_losses = [loss for _, loss in loss_curve(fp32)], [loss for _, loss in loss_curve(bf16)]
    assert all(torch.isfinite(torch.tensor(bf16_losses)))
    assert max(abs(a - b) for a, b in zip(fp32_losses, bf16_losses, strict=True)) < 0.05
    assert bf16_losses != fp32_losses  # autocast really ran in bf16
    assert bf16.model.dtype == torch.float32  # autocast keeps fp32 master weights


def test_from_pretrained_dtype_device_map_and_to(tmp_path):
    model = confident_model("luong_general")
    model.save_pretrained(tmp_path)
    input_ids, attention_mask = source_batch(batch_size=4)
    expected = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=6, do_sample=False)

    mapped = SimpleS2SForConditionalGeneration.from_pretrained(tmp_path, device_map="auto")
    assert {parameter.device.type for parameter in mapped.parameters()} == {"cpu"}
    assert torch.equal(mapped.generate(input_ids, attention_mask=attention_mask, max_new_tokens=6), expected)

    moved = model.to(torch.device("cpu"))
    assert moved is model and torch.equal(
        moved.generate(input_ids, attention_mask=attention_mask, max_new_tokens=6), expected
    )

    halved = SimpleS2SForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {parameter.dtype for parameter in halved.parameters()} == {torch.bfloat16}
    assert halved(input_ids, attention_mask, expected[:, :-1]).logits.dtype == torch.bfloat16
