"""int8 decoding on the CPU: every matrix product of the model (its linear layers and both GRUs) with int8 weights.

Dynamic quantization (Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference"): weights are quantized once, symmetrically per output channel; activations per call, from their
range. The kernels are PyTorch's fbgemm/x86 ones, the same `torch.ao.quantization.quantize_dynamic` runs; that only
reaches `nn.Linear` (and `nn.GRU`) modules, while the model's `SimpleS2SGRU` keeps its weights as parameters, so its
GRUs are swapped here for `Int8GRU`, which has the same `cell` / `run` interface over packed int8 weights.

    model = quantize_int8(AutoModelForSeq2SeqLM.from_pretrained(folder))  # a copy; generate() as usual
"""

import contextlib
import copy
import warnings

import torch
from torch import nn

from ..models.simple_s2s.modeling_simple_s2s import SimpleS2SForConditionalGeneration, SimpleS2SGRU

QUANTIZE_CHOICES = ("int8",)


@contextlib.contextmanager
def torch_ao_warnings_ignored():
    """torch 2.13 announces that torch.ao.quantization and quantized tensors move to torchao; their kernels work."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.ao.quantization")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*quantize_per_.*deprecated")
        yield


def packed_int8_weight(weight: torch.Tensor, bias: torch.Tensor | None):
    """`weight` `(out, in)` quantized symmetrically per output row and packed, with `bias`, for fbgemm's kernels."""
    scale = weight.detach().abs().amax(dim=1).clamp(min=1e-8).double() / 127  # (out,)
    zero_point = torch.zeros(weight.shape[0], dtype=torch.long)
    with torch_ao_warnings_ignored():
        qweight = torch.quantize_per_channel(weight.detach().float(), scale, zero_point, 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(qweight, None if bias is None else bias.detach().float())


class Int8GRU(nn.Module):
    """The weights of a `SimpleS2SGRU` in int8, with its interface: `cell` (one step, PyTorch's dynamic int8 GRU cell)
    and `run` (a sequence, its dynamic int8 GRU)."""

    def __init__(self, gru: SimpleS2SGRU):
        super().__init__()
        self.hidden_size, self.num_layers, self.bidirectional = gru.hidden_size, gru.num_layers, gru.bidirectional
        # Plain attributes: packed weights are not tensors that `state_dict` or `.to()` could handle.
        self.packed_cells, self.cell_params = {}, {}
        for layer in range(gru.num_layers):
            for reverse in (False, True) if gru.bidirectional else (False,):
                weight_ih, weight_hh, bias_ih, bias_hh = (p.detach().float() for p in gru.weights(layer, reverse))
                packed_ih, packed_hh = packed_int8_weight(weight_ih, bias_ih), packed_int8_weight(weight_hh, bias_hh)
                self.packed_cells[layer, reverse] = (packed_ih, packed_hh, bias_ih, bias_hh)
                self.cell_params[layer, reverse] = torch.ops.quantized.make_quantized_cell_params_dynamic(
                    packed_ih, packed_hh, bias_ih, bias_hh, True
                )

    def cell(self, layer: int, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One step of one layer: inputs `(batch, input)`, state `(batch, hidden)` -> new state `(batch, hidden)`."""
        return torch.ops.quantized.quantized_gru_cell_dynamic(inputs, state, *self.packed_cells[layer, False])

    def run(
        self, layer: int, inputs: torch.Tensor, initial_state: torch.Tensor, reverse: bool = False
    ) -> torch.Tensor:
        """One layer and direction over a sequence: inputs `(batch, length, input)`, initial state `(batch, hidden)`
        -> outputs `(batch, length, hidden)`, as `SimpleS2SGRU.run`."""
        params = [self.cell_params[layer, reverse]]
        outputs, _ = torch.quantized_gru(inputs, initial_state.unsqueeze(0), params, True, 1, 0.0, False, False, True)
        return outputs


def quantize_int8(model: SimpleS2SForConditionalGeneration) -> SimpleS2SForConditionalGeneration:
    """A copy of `model` (in eval mode, on the CPU) whose linear layers and GRUs compute with int8 weights; the
    embeddings and the single-feature layers stay in float. Decode it with `generate()` as usual (every option works); it cannot be trained or saved
    (quantize the saved float model after loading it: this takes well under a second)."""
    if not isinstance(model, SimpleS2SForConditionalGeneration):
        raise ValueError(f"`model` must be a SimpleS2SForConditionalGeneration, got {type(model).__name__}")
    if model.device.type != "cpu":
        raise ValueError(f"`model` must be on the CPU for int8 decoding, got device {model.device}")
    if model.dtype != torch.float32:
        raise ValueError(f"`model` must be in torch.float32 to be quantized, got dtype {model.dtype}")
    quantized = copy.deepcopy(model).eval()
    with torch_ao_warnings_ignored():
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        # A layer with one input or output feature (Bahdanau's energy v^T, coverage's) stays in float: there,
        # quantizing the activations at every call costs more than the product (3x slower at the full shape).
        layers = {
            name: qconfig
            for name, module in quantized.named_modules()
            if isinstance(module, nn.Linear) and min(module.in_features, module.out_features) > 1
        }
        torch.ao.quantization.quantize_dynamic(quantized, layers, dtype=torch.qint8, inplace=True)
    for part in (quantized.model.encoder, quantized.model.decoder):
        part.gru = Int8GRU(part.gru)
    return quantized


def quantize_model(model: SimpleS2SForConditionalGeneration, quantize: str | None):
    """`model` as `quantize` asks: None leaves it as it is, "int8" is `quantize_int8`."""
    if quantize is None:
        return model
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"`quantize` must be one of {QUANTIZE_CHOICES} or None, got {quantize!r}")
    return quantize_int8(model)


__all__ = ["QUANTIZE_CHOICES", "Int8GRU", "quantize_int8", "quantize_model"]
