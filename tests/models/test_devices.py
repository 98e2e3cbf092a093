"""The model on every device there is: the CPU here and in CI, CUDA too where a GPU is (`benchmarks/gpu_check.sh`).

Each test moves a tiny model and its inputs to the device explicitly and checks an equivalence there: the device's
logits against the CPU's, the cache against teacher forcing, `generate()` against the hand-written loops, beam
scores against re-scoring, batched against one by one, a model saved from the device against its reload on the
CPU, and a few `Seq2SeqTrainer` steps on the device. On a machine without CUDA the `cuda` cases are skipped.
"""

import copy

import pytest
import torch
from conftest import GEN, SOURCES, assert_beam_scores_match_rescoring, decode_step_by_step, padded_batch, tiny_model
from reversal_task import loss_curve, make_trainer

from benchmarks.bench_generate import check_same_tokens
from hf_simple_s2s import SimpleS2SForConditionalGeneration

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]
DECODER_INPUT_IDS = [1, 7, 9, 4, 12]


@pytest.fixture(params=DEVICES)
def device(request):
    # cuDNN's GRU may use TF32 on Ampere and later (matrix products may too if asked): full float32 keeps the
    # comparisons with the CPU tight.
    cudnn_tf32, matmul_precision = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield torch.device(request.param)
    torch.backends.cudnn.allow_tf32 = cudnn_tf32
    torch.set_float32_matmul_precision(matmul_precision)


def source_batch(device: torch.device, side: str = "left") -> tuple[torch.Tensor, torch.Tensor]:
    input_ids, attention_mask = padded_batch(SOURCES, side=side)
    return input_ids.to(device), attention_mask.to(device)


def test_logits_on_the_device_equal_the_cpu_logits(attention_type, device):
    cpu_model = tiny_model(attention_type=attention_type)
    input_ids, attention_mask = source_batch(torch.device("cpu"))
    decoder_input_ids = torch.tensor([DECODER_INPUT_IDS] * len(SOURCES))
    expected = cpu_model(input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits

    model = copy.deepcopy(cpu_model).to(device)
    logits = model(
        input_ids.to(device), attention_mask=attention_mask.to(device), decoder_input_ids=decoder_input_ids.to(device)
    ).logits
    assert logits.device.type == device.type
    torch.testing.assert_close(logits.cpu(), expected, atol=1e-5, rtol=1e-4)


def test_stepwise_decoding_with_cache_equals_teacher_forcing_on_the_device(attention_type, device):
    model = tiny_model(attention_type=attention_type).to(device)
    input_ids, attention_mask = source_batch(device)
    decoder_input_ids = torch.tensor([DECODER_INPUT_IDS] * len(SOURCES), device=device)
    full = model(input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    stepwise, cache = decode_step_by_step(model, input_ids, attention_mask, decoder_input_ids)
    torch.testing.assert_close(stepwise, full, atol=1e-5, rtol=1e-4)
    assert all(layer.recurrent_states[0].device.type == device.type for layer in cache.self_attention_cache.layers)


def test_generate_on_the_device_picks_the_hand_loops_tokens(attention_type, device):
    model = tiny_model(attention_type=attention_type).to(device)
    input_ids, attention_mask = source_batch(device)
    agreement = check_same_tokens(model, input_ids, attention_mask, new_tokens=6)  # raises on any disagreement
    assert agreement["beam5_identical_rows"] + agreement["beam5_tied_rows"] == len(SOURCES)


def test_beam_scores_match_rescoring_on_the_device(attention_type, device):
    model = tiny_model(attention_type=attention_type).to(device)
    input_ids, attention_mask = source_batch(device, side="right")
    assert_beam_scores_match_rescoring(model, input_ids, attention_mask, num_beams=3, **GEN)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_batched_generation_equals_one_by_one_on_the_device(attention_type, device, num_beams):
    model = tiny_model(attention_type=attention_type).to(device)
    input_ids, attention_mask = source_batch(device, side="left")
    batched = model.generate(input_ids, attention_mask=attention_mask, num_beams=num_beams, **GEN)
    for row, source in enumerate(SOURCES):
        alone = model.generate(torch.tensor([source], device=device), num_beams=num_beams, **GEN)[0]
        width = alone.shape[0]
        assert torch.equal(batched[row, :width], alone), f"row {row}"
        assert (batched[row, width:] == GEN["pad_token_id"]).all(), f"row {row} continues after its end"


def test_a_model_saved_from_the_device_reloads_on_the_cpu(device, tmp_path):
    cpu_model = tiny_model(attention_type="bahdanau", tie_word_embeddings=True)
    copy.deepcopy(cpu_model).to(device).save_pretrained(tmp_path)
    reloaded = SimpleS2SForConditionalGeneration.from_pretrained(tmp_path)
    assert next(reloaded.parameters()).device.type == "cpu"
    expected = cpu_model.state_dict()
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    assert reloaded.lm_head.weight is reloaded.model.decoder.embed_tokens.weight


def test_seq2seq_trainer_trains_on_the_device(device, tmp_path):
    trainer = make_trainer(str(tmp_path), max_steps=6, save_strategy="no", use_cpu=device.type == "cpu")
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    assert all(p.device.type == device.type for p in trainer.model.parameters())
    losses = [loss for _, loss in loss_curve(trainer)]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    changed = [
        name for name, p in trainer.model.named_parameters() if not torch.equal(p.detach().cpu(), before[name].cpu())
    ]
    assert len(changed) == len(before)  # every parameter took part and was updated
