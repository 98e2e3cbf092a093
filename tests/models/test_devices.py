"""The model on every device there is: the CPU here and in CI, CUDA too where a GPU is (`benchmarks/gpu_check.sh`).

Each test moves a tiny model and its inputs to the device explicitly: the device's logits against the CPU's,
`generate()` against the hand-written loops, a model saved from the device against its reload on the CPU, a few
`Seq2SeqTrainer` steps on the device. On an accelerator, the model's equivalences (`equivalences.py`: the cache
against teacher forcing, beam scores against re-scoring, batched against one by one) run again; on the CPU,
`TestEquivalences` runs them on the whole grid. On a machine without CUDA the `cuda` cases are skipped.
"""

import copy

import pytest
import torch
from conftest import ATTENTION_TYPES, GEN, SOURCES, padded_batch, tiny_model
from equivalences import (
    Setup,
    assert_batched_generate_equals_one_by_one,
    assert_beam_scores_match_rescoring,
    assert_stepwise_cache_equals_teacher_forcing,
    ending_at_different_steps,
    recurrent_states,
)
from reversal_task import loss_curve, make_trainer

from benchmarks.bench_generate import check_same_tokens
from hf_simple_s2s import SimpleS2SForConditionalGeneration

CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))
DEVICES = ["cpu", CUDA]
ACCELERATORS = [CUDA]  # where the equivalences run again
SETUPS = [Setup(attention_type, coverage=False, layers=2) for attention_type in ATTENTION_TYPES]
# The device's GRU kernels (cuDNN) against the GRU cell of the stepwise path: float32 rounding, not the default's.
DEVICE_TOLERANCE = dict(atol=1e-5, rtol=1e-4)
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


on_accelerators = pytest.mark.parametrize("device", ACCELERATORS, indirect=True)


@pytest.fixture(params=SETUPS, ids=str)
def setup(request) -> Setup:
    return request.param


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


def test_generate_on_the_device_picks_the_hand_loops_tokens(attention_type, device):
    model = tiny_model(attention_type=attention_type).to(device)
    input_ids, attention_mask = source_batch(device)
    agreement = check_same_tokens(model, input_ids, attention_mask, new_tokens=6)  # raises on any disagreement
    assert agreement["beam5_identical_rows"] + agreement["beam5_tied_rows"] == len(SOURCES)


@on_accelerators
def test_stepwise_decoding_with_cache_equals_teacher_forcing_on_the_device(setup, device):
    model = setup.model(device)
    input_ids, attention_mask = source_batch(device)
    decoder_input_ids = torch.tensor([DECODER_INPUT_IDS] * len(SOURCES), device=device)
    cache = assert_stepwise_cache_equals_teacher_forcing(
        model, input_ids, attention_mask, decoder_input_ids, **DEVICE_TOLERANCE
    )
    assert all(state.device.type == device.type for state in recurrent_states(cache))


@on_accelerators
def test_beam_scores_match_rescoring_on_the_device(setup, device):
    model = setup.model(device)
    input_ids, attention_mask = source_batch(device, side="right")
    generate_kwargs = ending_at_different_steps(model, SOURCES, **GEN)
    assert_beam_scores_match_rescoring(model, input_ids, attention_mask, num_beams=3, **generate_kwargs)


@on_accelerators
@pytest.mark.parametrize("num_beams", [1, 3])
def test_batched_generation_equals_one_by_one_on_the_device(setup, device, num_beams):
    model = setup.model(device)
    generate_kwargs = ending_at_different_steps(model, SOURCES, **GEN)
    assert_batched_generate_equals_one_by_one(model, SOURCES, num_beams, sides=("left",), **generate_kwargs)


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
