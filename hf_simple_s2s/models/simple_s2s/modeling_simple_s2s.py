"""SimpleS2S: a (bi)GRU encoder and a GRU decoder with attention, as a native transformers model.

Attention is additive (Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and
Translate") or multiplicative (Luong et al. 2015, "Effective Approaches to Attention-based NMT", dot / general).
Optional: coverage (Tu et al. 2016, "Modeling Coverage for NMT"; See et al. 2017, "Get To The Point") and
scheduled sampling (Bengio et al. 2015, "Scheduled Sampling for Sequence Prediction with RNNs").
"""

import os
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from transformers import DynamicCache, EncoderDecoderCache, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, LinearAttentionCacheLayerMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.utils import logging, torch_compilable_check
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_simple_s2s import SimpleS2SConfig

logger = logging.get_logger(__name__)

TOKEN_ID_DTYPES = (torch.int64, torch.int32)  # what nn.Embedding accepts


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None):
    """Teacher forcing inputs: `labels` moved one step right behind the start token, -100 replaced by pad."""
    if decoder_start_token_id is None:
        raise ValueError("`decoder_start_token_id` is None: set it in the config to build decoder inputs from labels")
    if pad_token_id is None:
        raise ValueError("`pad_token_id` is None: set it in the config to build decoder inputs from labels")
    decoder_input_ids = labels.new_full(labels.shape, decoder_start_token_id)
    decoder_input_ids[:, 1:] = labels[:, :-1]
    return decoder_input_ids.masked_fill(decoder_input_ids == -100, pad_token_id)


def check_token_ids(token_ids: torch.Tensor, vocab_size: int, name: str, ignore_index: int | None = None) -> None:
    """Raise a `ValueError` naming the tensor and its first id outside `[0, vocab_size)` (or its dtype, shape), before
    the embedding fails on it. Value checks are compiler hints when traced (`torch.compile`, `torch.export`)."""
    if token_ids.dtype not in TOKEN_ID_DTYPES:
        raise ValueError(f"`{name}` must hold token ids of dtype torch.int64 or torch.int32, got {token_ids.dtype}")
    if token_ids.dim() != 2 or 0 in token_ids.shape:
        raise ValueError(
            f"`{name}` must have shape (batch, length) with at least one row and one token, got "
            f"{tuple(token_ids.shape)}"
        )
    in_range = (token_ids >= 0) & (token_ids < vocab_size)
    if ignore_index is not None:
        in_range = in_range | (token_ids == ignore_index)

    def message() -> str:
        bad_id = token_ids[~in_range][0].item()
        return f"`{name}` holds token id {bad_id}, outside the vocabulary (vocab_size={vocab_size})"

    torch_compilable_check(in_range, message)


def check_source_mask(attention_mask: torch.Tensor | None, source_shape: torch.Size) -> None:
    """Raise a `ValueError` unless `attention_mask` `(batch, src_len)` matches the source `(batch, src_len, ...)`."""
    if attention_mask is not None and attention_mask.shape != source_shape[:2]:
        raise ValueError(
            f"`attention_mask` has shape {tuple(attention_mask.shape)} but the source has shape "
            f"{tuple(source_shape[:2])}; they must match"
        )


def coverage_loss(
    attention_weights: torch.Tensor, target_mask: torch.Tensor, initial_coverage: torch.Tensor | None = None
) -> torch.Tensor:
    """See et al. 2017: sum_j min(a_tj, c_tj) at each target step, averaged over the steps where `target_mask` is set.

    `attention_weights` `(batch, tgt_len, src_len)`, `target_mask` `(batch, tgt_len)`, `initial_coverage`
    `(batch, src_len)`: the coverage before the first of these steps (from a cache), None for zero.
    """
    coverage = attention_weights.cumsum(dim=1) - attention_weights  # weights of the steps before t, (batch, tgt, src)
    if initial_coverage is not None:
        coverage = coverage + initial_coverage.unsqueeze(1)
    per_step = torch.minimum(attention_weights, coverage).sum(dim=-1)  # (batch, tgt_len)
    return (per_step * target_mask).sum() / target_mask.sum().clamp(min=1)


def teacher_forcing_ratio(schedule: str, k: float, step: int) -> float:
    """Probability of feeding the gold token at training step `step` (Bengio et al. 2015, section 2.4 decays)."""
    if schedule == "linear":
        return max(0.0, 1.0 - step / k)
    # float64 tensors rather than `math`: the code that travels to the Hub imports only torch and transformers.
    decay = torch.tensor(step / k, dtype=torch.float64)
    if schedule == "exponential":  # the paper's k^i, with the base written as exp(-1 / k) so that k is in steps
        return float(torch.exp(-decay))
    if schedule == "inverse_sigmoid":
        return float(k / (k + torch.exp(decay)))  # exp overflows to inf: the ratio then reaches 0
    return 1.0


@dataclass
class SimpleS2SEncoderOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, src_len, encoder_output_size)`):
            Top-layer outputs of the encoder, zero at padded positions. The decoder attends over them.
        final_hidden_state (`torch.FloatTensor` of shape `(batch_size, encoder_output_size)`):
            Top-layer final state (both directions concatenated), from which the decoder's initial state is bridged.
        attention_keys (`torch.FloatTensor` of shape `(batch_size, src_len, hidden_size)`):
            The outputs projected for attention scoring, once per source (Bahdanau's U_a h_j, Luong's W_a h_j).
            Batch-first like every field, so that `generate()` expands them for beams and never reorders them.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            The embedded input, then the outputs of every layer.
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_hidden_state: torch.FloatTensor | None = None
    attention_keys: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class SimpleS2SRun(NamedTuple):
    """What `SimpleS2SModel.run` computes, before it is put into a `ModelOutput` (one per forward, not two: a
    `ModelOutput` costs a noticeable part of a decoding step on a CPU)."""

    output_vectors: torch.Tensor  # (batch, tgt_len, embedding_size)
    cross_attention: torch.Tensor  # (batch, 1, tgt_len, src_len)
    decoder_hidden_states: tuple[torch.Tensor, ...] | None
    encoder_outputs: SimpleS2SEncoderOutput
    cache: Cache | None  # what was passed or made, updated


def gather_positions(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values `(batch, length, size)` at per-row positions `index` `(batch, n)` -> `(batch, n, size)`."""
    return values.gather(1, index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


class SimpleS2SGRU(nn.Module):
    """The weights of a multi-layer (bi)GRU, named as `nn.GRU` names them, run one layer and direction at a time with
    torch's GRU kernels: the encoder needs each direction on its own, the decoder one step at a time, and unlike
    `nn.GRU` this module can be traced by `torch.compile` and `torch.export`."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool = False):
        super().__init__()
        self.hidden_size, self.num_layers, self.bidirectional = hidden_size, num_layers, bidirectional
        for layer in range(num_layers):
            layer_input_size = input_size if layer == 0 else hidden_size * (2 if bidirectional else 1)
            for suffix in ("", "_reverse") if bidirectional else ("",):
                shapes = {
                    "weight_ih": (3 * hidden_size, layer_input_size),
                    "weight_hh": (3 * hidden_size, hidden_size),
                }
                shapes.update(bias_ih=(3 * hidden_size,), bias_hh=(3 * hidden_size,))
                for name, shape in shapes.items():
                    self.register_parameter(f"{name}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))

    def weights(self, layer: int, reverse: bool = False) -> list[torch.Tensor]:
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        return [getattr(self, f"{name}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def cell(self, layer: int, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One step of one layer: inputs `(batch, input)`, state `(batch, hidden)` -> new state `(batch, hidden)`."""
        return torch.gru_cell(inputs, state, *self.weights(layer))

    def run(
        self, layer: int, inputs: torch.Tensor, initial_state: torch.Tensor, reverse: bool = False
    ) -> torch.Tensor:
        """One layer and direction over a sequence, first position first: inputs `(batch, length, input)`, initial
        state `(batch, hidden)` -> outputs `(batch, length, hidden)` (its state after each position)."""
        weights = self.weights(layer, reverse)
        outputs, _ = torch.gru(inputs, initial_state.unsqueeze(0), weights, True, 1, 0.0, False, False, True)
        return outputs


class SimpleS2SAttention(nn.Module):
    """Scores decoder queries against the attention keys: additive (Bahdanau) or dot / general (Luong)."""

    def __init__(self, config: SimpleS2SConfig):
        super().__init__()
        self.attention_type = config.attention_type
        if config.attention_type == "bahdanau":  # e_tj = v^T tanh(W s_{t-1} + U h_j), U h_j being the key
            self.query_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
            self.energy = nn.Linear(config.hidden_size, 1, bias=False)
        if config.coverage:
            # Bahdanau: e_tj = v^T tanh(W s + U h_j + w_c c_tj) (See et al.); Luong: score + (s_t^T w_c) c_tj, the
            # dot product of the query with a key moved by w_c c_tj, so that dot scoring gets coverage too.
            in_size, out_size = (
                (1, config.hidden_size) if self.attention_type == "bahdanau" else (config.hidden_size, 1)
            )
            self.coverage_proj = nn.Linear(in_size, out_size, bias=False)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        padding_mask: torch.Tensor | None,
        coverage: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            query: `(batch, tgt_len, hidden)` decoder states.
            keys: `(batch, src_len, hidden)`, the encoder's `attention_keys`.
            padding_mask: `(batch, 1, src_len)`, True on padded source positions, or None for no padding.
            coverage: `(batch, 1, src_len)` past attention summed, with `config.coverage` (then tgt_len is 1).

        Returns:
            weights `(batch, tgt_len, src_len)`, which sum to 1 over the real source tokens and are exactly 0 on pads
            (all 0 for a source that is only padding).
        """
        if self.attention_type == "bahdanau":
            energies = self.query_proj(query).unsqueeze(2) + keys.unsqueeze(1)  # (batch, tgt, src, hidden)
            if coverage is not None:
                energies = energies + self.coverage_proj(coverage.unsqueeze(-1))  # (batch, 1, src, hidden)
            scores = self.energy(torch.tanh(energies)).squeeze(-1)  # (batch, tgt_len, src_len)
        else:
            scores = query @ keys.transpose(1, 2)  # (batch, tgt_len, src_len)
            if coverage is not None:
                scores = scores + self.coverage_proj(query) * coverage  # (batch, 1, 1) * (batch, 1, src_len)
        if padding_mask is None:
            return torch.softmax(scores, dim=-1)
        # finfo.min rather than -inf: a source that is all padding gets uniform weights, zeroed below, not NaN
        scores = scores.masked_fill(padding_mask, torch.finfo(scores.dtype).min)
        return torch.softmax(scores, dim=-1).masked_fill(padding_mask, 0.0)


class SimpleS2SEncoder(nn.Module):
    """Embeddings, dropout and a multi-layer (bi)GRU that reads only the real tokens of each row, whatever side the
    padding is on; then the outputs projected once into keys for the decoder's attention."""

    main_input_name = "input_ids"

    def __init__(self, config: SimpleS2SConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.gru = SimpleS2SGRU(
            config.embedding_size, config.hidden_size, config.encoder_layers, config.bidirectional_encoder
        )
        if config.attention_type != "luong_dot":
            self.key_proj = nn.Linear(config.encoder_output_size, config.hidden_size, bias=False)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SimpleS2SEncoderOutput | tuple:
        """
        Args:
            input_ids: `(batch, src_len)` source token ids (or `inputs_embeds` `(batch, src_len, embedding_size)`).
            attention_mask: `(batch, src_len)`, 1 on real tokens and 0 on pads (left, right or both sides).
                None means no padding.
            output_attentions: accepted for the `generate()` interface; a GRU encoder has no self-attention.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds` to the encoder")
        if input_ids is not None:
            check_token_ids(input_ids, self.config.vocab_size, "input_ids")
            inputs_embeds = self.embed_tokens(input_ids)
        elif inputs_embeds.dim() != 3 or 0 in inputs_embeds.shape[:2]:
            raise ValueError(
                f"`inputs_embeds` must have shape (batch, src_len, embedding_size) with at least one row and one "
                f"token, got {tuple(inputs_embeds.shape)}"
            )
        check_source_mask(attention_mask, inputs_embeds.shape)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        embeds = self.dropout(inputs_embeds)  # (batch, src_len, emb)
        if attention_mask is None:
            attention_mask = torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device)
        layer_outputs, final_hidden_state = self.run_gru(embeds, attention_mask.bool())
        outputs = layer_outputs[-1]  # (batch, src_len, enc_size)
        hidden_states = (embeds, *layer_outputs) if output_hidden_states else None
        output = SimpleS2SEncoderOutput(
            last_hidden_state=outputs,
            final_hidden_state=final_hidden_state,
            attention_keys=self.project_keys(outputs),
            hidden_states=hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def run_gru(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The GRU layers over each row's real tokens only, with no data-dependent branch (so that it compiles and
        exports): real tokens are moved to the front in order, the forward direction reads them first, the backward
        direction reads them reversed (pads stay behind), and outputs go back to the input's positions. The pads a
        direction reads after the real tokens never reach a real output.

        Returns every layer's outputs `(batch, src_len, enc_size)` (0 on pads) and the top layer's final state
        `(batch, enc_size)` (0 for a row that is all padding).
        """
        src_len = embeds.shape[1]
        lengths = mask.sum(dim=1, keepdim=True)  # (batch, 1)
        steps = lengths.clamp(min=1)  # a row of only padding runs one (pad) step and is zeroed below
        positions = torch.arange(src_len, device=embeds.device).unsqueeze(0)  # (1, src_len)
        # Where each position goes when the real tokens move to the front, in order, pads behind them: a permutation
        # computed with cumulative sums (no sort, which the ONNX exporter cannot translate).
        real = mask.long()  # cumsum of integers: ONNX has no cumsum of booleans
        destination = torch.where(mask, real.cumsum(dim=1) - 1, lengths + (1 - real).cumsum(dim=1) - 1)
        reverse = torch.where(
            positions < steps, steps - 1 - positions, positions
        )  # real tokens reversed, an involution
        last = steps - 1  # (batch, 1)
        is_real = positions < lengths  # (batch, src_len), in the front-packed order

        hidden = torch.zeros_like(embeds).scatter(1, destination.unsqueeze(-1).expand_as(embeds), embeds)
        front_packed_outputs = []
        for layer in range(self.config.encoder_layers):
            if layer > 0:  # as nn.GRU: dropout between stacked layers
                hidden = self.dropout(hidden)
            initial_state = hidden.new_zeros(hidden.shape[0], self.config.hidden_size)
            forward_outputs = self.gru.run(layer, hidden, initial_state)  # (batch, src_len, hidden)
            finals = [gather_positions(forward_outputs, last)]
            if self.config.bidirectional_encoder:
                reversed_outputs = self.gru.run(layer, gather_positions(hidden, reverse), initial_state, reverse=True)
                finals.append(gather_positions(reversed_outputs, last))  # after reading the first real token
                forward_outputs = torch.cat([forward_outputs, gather_positions(reversed_outputs, reverse)], dim=-1)
            hidden = forward_outputs.masked_fill(~is_real.unsqueeze(-1), 0.0)  # (batch, src_len, enc_size)
            front_packed_outputs.append(hidden)

        final_hidden_state = torch.cat(finals, dim=-1).squeeze(1)  # (batch, enc_size)
        final_hidden_state = final_hidden_state.masked_fill(lengths == 0, 0.0)
        layer_outputs = [gather_positions(outputs, destination) for outputs in front_packed_outputs]  # input order
        return layer_outputs, final_hidden_state

    def project_keys(self, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """(batch, src_len, enc_size) -> attention keys (batch, src_len, hidden), once per source."""
        if self.config.attention_type != "luong_dot":
            return self.key_proj(encoder_hidden_states)
        if not self.config.bidirectional_encoder:
            return encoder_hidden_states
        # Parameter-free dot scoring against a bidirectional encoder: sum the two directions (as the PyTorch
        # chatbot tutorial does) so the keys have the decoder state's size.
        forward_states, backward_states = encoder_hidden_states.split(self.config.hidden_size, dim=-1)
        return forward_states + backward_states


class SimpleS2SDecoder(GradientCheckpointingLayer):
    """A GRU decoder that attends over the encoder outputs at every step and returns one vector per step."""

    def __init__(self, config: SimpleS2SConfig):
        super().__init__()
        self.config = config
        self.is_bahdanau = config.attention_type == "bahdanau"
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.attention = SimpleS2SAttention(config)
        # The bridge: the encoder's final state -> the initial state of every decoder layer.
        self.bridge = nn.Linear(config.encoder_output_size, config.decoder_layers * config.hidden_size)
        # Bahdanau feeds the context into the GRU; Luong attends after the GRU (no input feeding, so teacher
        # forcing runs the GRU over the whole target in one call).
        gru_input_size = config.embedding_size + (config.encoder_output_size if self.is_bahdanau else 0)
        self.gru = SimpleS2SGRU(gru_input_size, config.hidden_size, config.decoder_layers)
        # Bahdanau's deep output tanh(W[s; c; e]) or Luong's attentional layer tanh(W[c; h]), sized like the
        # embedding so that the output layer can share the embedding matrix.
        output_input_size = config.hidden_size + config.encoder_output_size
        if self.is_bahdanau:
            output_input_size += config.embedding_size
        self.output_proj = nn.Linear(output_input_size, config.embedding_size)

    def initial_state(self, final_hidden_state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(batch, encoder_output_size) -> one state (batch, hidden) per decoder layer."""
        state = torch.tanh(self.bridge(final_hidden_state))  # (batch, layers * hidden)
        return state.view(-1, self.config.decoder_layers, self.config.hidden_size).unbind(1)

    def step(
        self,
        embedded: torch.Tensor,
        states: tuple[torch.Tensor, ...],
        keys: torch.Tensor,
        values: torch.Tensor,
        padding_mask: torch.Tensor | None,
        coverage: torch.Tensor | None,
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """One decoding step, the recurrence that every path unrolls or calls (training, generate(), scheduled
        sampling, export).

        Args:
            embedded: `(batch, embedding_size)`, the embedded input token (after dropout).
            states: one `(batch, hidden)` state per layer, after the previous token.
            keys, values: `(batch, src_len, hidden)` attention keys and `(batch, src_len, enc_size)` encoder outputs.
            padding_mask: `(batch, 1, src_len)`, True on pads, or None.
            coverage: `(batch, 1, src_len)` attention summed over the previous steps, with `config.coverage`.

        Returns:
            the new states and this step's attention weights `(batch, 1, src_len)`.
        """
        if self.is_bahdanau:  # attend with the previous top state, feed the context into the GRU
            weights = self.attention(states[-1].unsqueeze(1), keys, padding_mask, coverage)  # (batch, 1, src)
            layer_input = torch.cat([embedded, (weights @ values).squeeze(1)], dim=-1)  # (batch, emb + enc)
        else:
            layer_input = embedded
        new_states = []
        for layer, state in enumerate(states):
            if layer > 0:  # as nn.GRU: dropout between stacked layers
                layer_input = self.dropout(layer_input)
            layer_input = self.gru.cell(layer, layer_input, state)  # (batch, hidden)
            new_states.append(layer_input)
        if not self.is_bahdanau:  # Luong: attend with the new top state
            weights = self.attention(layer_input.unsqueeze(1), keys, padding_mask, coverage)
        return tuple(new_states), weights

    def run_gru_over_sequence(
        self, embeds: torch.Tensor, states: tuple[torch.Tensor, ...]
    ) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]:
        """Luong without coverage: the attention does not feed the GRU, so each layer runs over the whole target in
        one call (equal to unrolling `step`, which the tests check). Returns each layer's outputs and last states."""
        layer_outputs, layer_input = [], embeds
        for layer, state in enumerate(states):
            if layer > 0:
                layer_input = self.dropout(layer_input)
            layer_input = self.gru.run(layer, layer_input, state)  # (batch, tgt_len, hidden)
            layer_outputs.append(layer_input)
        return layer_outputs, tuple(outputs[:, -1] for outputs in layer_outputs)

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        inputs_embeds: torch.FloatTensor | None,
        encoder_hidden_states: torch.Tensor,
        attention_keys: torch.Tensor,
        final_hidden_state: torch.Tensor | None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """
        Tensors that may need gradients are positional, as gradient checkpointing (`use_reentrant=True`) requires.

        Args:
            input_ids: `(batch, tgt_len)` decoder inputs (the start token, then the target shifted right), or
                `inputs_embeds` `(batch, tgt_len, embedding_size)`.
            encoder_hidden_states, attention_keys: `(batch, src_len, enc_size)`, `(batch, src_len, hidden)`.
            final_hidden_state: `(batch, enc_size)`, bridged into the initial state when the cache has none.
            attention_mask: `(batch, src_len)` source mask, or None for no padding.
            cache: the decoder part of the cache (see `SimpleS2SConfig.layer_types`), read and updated in place:
                per layer the GRU state, and in layer 0 one row per token fed so far, its attention weights.

        Returns:
            output vectors `(batch, tgt_len, embedding_size)`, attention weights `(batch, 1, tgt_len, src_len)` (one
            head, transformers' layout; the outputs are computed from this very tensor), and with
            `output_hidden_states` the embedded inputs and every layer's outputs `(batch, tgt_len, hidden)`.
        """
        embeds = self.dropout(self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds)
        padding_mask = source_padding_mask(attention_mask)
        if cache is not None and cache.has_previous_state(0, 0):
            # Copies: the cache is updated in place at the end of this call, and autograd may need what was read.
            states = tuple(cache.layers[layer].recurrent_states[0].clone() for layer in range(len(cache.layers)))
            coverage = coverage_so_far(cache) if self.config.coverage else None
        else:
            states, coverage = self.start(final_hidden_state, attention_keys)

        if not self.is_bahdanau and coverage is None and embeds.shape[1] > 1:
            layer_outputs, states = self.run_gru_over_sequence(embeds, states)
            cross_attention = self.attention(layer_outputs[-1], attention_keys, padding_mask).unsqueeze(1)
        else:
            step_states, step_weights = [], []
            for t in range(embeds.shape[1]):
                states, weights = self.step(
                    embeds[:, t], states, attention_keys, encoder_hidden_states, padding_mask, coverage
                )
                if coverage is not None:
                    coverage = coverage + weights
                step_states.append(states)
                step_weights.append(weights)
            cross_attention = torch.cat(step_weights, dim=1).unsqueeze(1)  # (batch, 1, tgt_len, src_len)
            layers = range(self.config.decoder_layers) if output_hidden_states else [self.config.decoder_layers - 1]
            layer_outputs = [torch.stack([s[layer] for s in step_states], dim=1) for layer in layers]

        output_vectors = self.output_vectors(layer_outputs[-1], cross_attention, encoder_hidden_states, embeds)
        if cache is not None:
            store_in_cache(cache, states, cross_attention)
        hidden_states = (embeds, *layer_outputs) if output_hidden_states else None
        return output_vectors, cross_attention, hidden_states

    def start(
        self, final_hidden_state: torch.Tensor | None, attention_keys: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
        """The states before the first token (bridged from the encoder) and, with coverage, zero coverage."""
        if final_hidden_state is None:
            raise ValueError(
                "`encoder_outputs` must carry `final_hidden_state` (as SimpleS2SEncoder returns it) to start decoding"
            )
        batch_size, src_len = attention_keys.shape[:2]
        coverage = attention_keys.new_zeros(batch_size, 1, src_len) if self.config.coverage else None
        return self.initial_state(final_hidden_state), coverage

    def output_vectors(
        self,
        top_outputs: torch.Tensor,
        cross_attention: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        embeds: torch.Tensor,
    ) -> torch.Tensor:
        """Bahdanau's deep output tanh(W[s; c; e]) or Luong's attentional layer tanh(W[s; c]), for every position:
        top-layer outputs `(batch, tgt_len, hidden)`, attention `(batch, 1, tgt_len, src_len)`, embedded inputs
        `(batch, tgt_len, emb)` -> `(batch, tgt_len, emb)`. The context is computed here from the attention weights
        that are returned, so that they are on the gradient path like any transformers attention output."""
        context = cross_attention.squeeze(1) @ encoder_hidden_states  # (batch, tgt_len, enc_size)
        features = [top_outputs, context] + ([embeds] if self.is_bahdanau else [])
        return torch.tanh(self.output_proj(torch.cat(features, dim=-1)))


def source_padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """`(batch, src_len)` source mask -> `(batch, 1, src_len)`, True on pads; None for no padding."""
    return None if attention_mask is None else (attention_mask == 0).unsqueeze(1)


def coverage_so_far(cache: Cache) -> torch.Tensor:
    """The attention weights of every token fed so far, summed: `(batch, 1, src_len)` (unwritten rows are 0)."""
    return cache.layers[0].keys.sum(dim=2)


def store_in_cache(cache: Cache, states: tuple[torch.Tensor, ...], cross_attention: torch.Tensor) -> None:
    """Write the decoder's state after the tokens just fed into transformers' cache layers, in place (static
    addresses stay, so a compiled step can be captured in a CUDA graph)."""
    for layer, state in enumerate(states):
        cache.update_recurrent_state(state, layer_idx=layer)
        if not cache.layers[layer].has_previous_state[0]:
            # transformers sets this flag when a conv state is written (Mamba); a GRU has only a recurrent state.
            cache.layers[layer].has_previous_state[0] = True
    # One key row per token fed, its attention weights; the values carry nothing (zero width).
    cache.update(cross_attention, cross_attention.new_zeros(*cross_attention.shape[:3], 0), layer_idx=0)


def decoder_cache(cache: Cache | None, config: SimpleS2SConfig) -> Cache | None:
    """The part of `cache` that holds the decoder's state: itself, or the self-attention part of an
    `EncoderDecoderCache`; refused with a `ValueError` unless its layers can hold a recurrent state."""
    if cache is None:
        return None
    if isinstance(cache, EncoderDecoderCache):
        cache = cache.self_attention_cache
    if (
        not isinstance(cache, Cache)
        or len(cache.layers) != config.decoder_layers
        or not all(isinstance(layer, LinearAttentionCacheLayerMixin) for layer in cache.layers)
    ):
        raise ValueError(
            f"`cache` must be built from the model's config (e.g. `DynamicCache(config=model.config)`), with one "
            f"recurrent layer per decoder layer ({config.decoder_layers}); got {cache!r}"
        )
    return cache


class SimpleS2SPreTrainedModel(PreTrainedModel):
    config: SimpleS2SConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["SimpleS2SEncoder", "SimpleS2SDecoder"]
    # The decoder, whose unrolled steps hold most of the activations, is recomputed in the backward pass.
    supports_gradient_checkpointing = True
    # A recurrent state cannot be rolled back, so assisted generation must refuse it.
    _is_stateful = True
    # A decoding step from a static cache has no graph break: generate() can compile it (`cache_implementation="static"`).
    _can_compile_fullgraph = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # transformers' default does not know GRUs; uniform [-r, r] for every weight is the classic RNN NMT init.
        bound = self.config.initializer_range
        if isinstance(module, SimpleS2SGRU):
            for name, param in module.named_parameters():
                if name.startswith("weight"):
                    init.uniform_(param, -bound, bound)
                else:
                    init.zeros_(param)
        elif isinstance(module, nn.Linear):
            init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.uniform_(module.weight, -bound, bound)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])

    @property
    def _tied_weights_keys(self) -> dict[str, str]:
        """`{target: source}` of the ties the config makes now (not when the model was built), so that a changed
        `tie_word_embeddings` or `share_embeddings` is what `save_pretrained` and `tie_weights` follow."""
        prefix = "" if isinstance(self, SimpleS2SModel) else "model."
        tied = {}
        if self.config.tie_word_embeddings and not isinstance(self, SimpleS2SModel):
            tied["lm_head.weight"] = f"{prefix}decoder.embed_tokens.weight"
        if self.config.share_embeddings:
            tied[f"{prefix}encoder.embed_tokens.weight"] = f"{prefix}decoder.embed_tokens.weight"
        return tied

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        # transformers applies every tie only with `tie_word_embeddings`; `share_embeddings` ties the encoder's
        # embedding to the decoder's on its own, so each entry of `_tied_weights_keys` is switched by its field.
        if all_submodels:
            return super().get_expanded_tied_weights_keys(all_submodels=True)
        return self._tied_weights_keys

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        # transformers logs an error and returns None for a file path: nothing would be saved without a word.
        if os.path.isfile(save_directory):
            raise ValueError(f"`save_directory` {os.fspath(save_directory)!r} is a file; pass a folder")
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, output_loading_info: bool = False, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing weights that lack tensors of this model: transformers fills them
        with random values and only logs a report, so a damaged or emptied weights file would translate nonsense.
        Still loaded as transformers loads them: a base-model checkpoint under a head (the head is new), weights passed
        in memory (`state_dict`, no name), and anything when the caller asks for `output_loading_info` to see what is
        missing. Here, in the file that travels with the weights, so that remote-code loads refuse them too."""
        model, loading_info = super().from_pretrained(
            pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
        )
        if output_loading_info:
            return model, loading_info
        base_prefix = "" if model is model.base_model else f"{model.base_model_prefix}."
        saved_from_this_class = cls.__name__ in (model.config.architectures or [])
        missing = loading_info["missing_keys"]
        refused = sorted(key for key in missing if saved_from_this_class or key.startswith(base_prefix))
        if refused and pretrained_model_name_or_path is not None:
            raise ValueError(
                f"the weights of {os.fspath(pretrained_model_name_or_path)} lack {len(refused)} of the {cls.__name__} "
                f"tensors (missing: {', '.join(refused[:5])}{', ...' if len(refused) > 5 else ''}); they are incomplete"
                " or belong to another model"
            )
        return model


class SimpleS2SModel(SimpleS2SPreTrainedModel):
    """The bare encoder-decoder, returning the decoder's output vectors (before the vocabulary projection)."""

    def __init__(self, config: SimpleS2SConfig):
        super().__init__(config)
        self.encoder = SimpleS2SEncoder(config)
        self.decoder = SimpleS2SDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding):
        self.encoder.embed_tokens = value
        if self.config.share_embeddings:
            self.decoder.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: SimpleS2SEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        decoder_inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqModelOutput | tuple:
        r"""
        Args:
            input_ids: `(batch, src_len)` source token ids (or `inputs_embeds`, `(batch, src_len, embedding_size)`).
            attention_mask: `(batch, src_len)`, 1 on real source tokens, 0 on pads (either side). None: no pads.
            decoder_input_ids: `(batch, tgt_len)` (or `decoder_inputs_embeds`); with a `cache` that holds a state,
                only the tokens not fed yet.
            decoder_attention_mask: accepted for interface compatibility; the decoder is causal and recurrent, so
                right-padded targets need no mask (their pads only follow the real tokens).
            encoder_outputs: a `SimpleS2SEncoderOutput` (or the tuple `(last_hidden_state, final_hidden_state)`).
            cache: an `EncoderDecoderCache` or `DynamicCache` / `StaticCache` built from the config (generate() builds
                one); it is updated in place and returned. With `use_cache` and no cache, a new one is made.
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        run = self.run(
            input_ids,
            attention_mask,
            decoder_input_ids,
            encoder_outputs,
            cache,
            inputs_embeds,
            decoder_inputs_embeds,
            use_cache,
            output_hidden_states,
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=run.output_vectors,
            cache=run.cache if use_cache else None,
            decoder_hidden_states=run.decoder_hidden_states,
            cross_attentions=(run.cross_attention,) if output_attentions else None,  # one layer, one head
            encoder_last_hidden_state=run.encoder_outputs.last_hidden_state,
            encoder_hidden_states=run.encoder_outputs.hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def run(
        self,
        input_ids: torch.LongTensor | None,
        attention_mask: torch.Tensor | None,
        decoder_input_ids: torch.LongTensor | None,
        encoder_outputs: SimpleS2SEncoderOutput | tuple | None,
        cache: Cache | None,
        inputs_embeds: torch.FloatTensor | None,
        decoder_inputs_embeds: torch.FloatTensor | None,
        use_cache: bool,
        output_hidden_states: bool,
    ) -> SimpleS2SRun:
        """The encoder (unless `encoder_outputs` are given) and the decoder, as both forwards need them."""
        if (decoder_input_ids is None) == (decoder_inputs_embeds is None):
            raise ValueError(
                "Pass exactly one of `decoder_input_ids` and `decoder_inputs_embeds` (or `labels`, for "
                "SimpleS2SForConditionalGeneration)"
            )
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        state_cache = decoder_cache(cache, self.config)
        # Inputs are checked where decoding starts; later steps feed generated ids and the same encoder outputs.
        starting = state_cache is None or not state_cache.has_previous_state(0, 0)
        if decoder_input_ids is not None and starting:
            check_token_ids(decoder_input_ids, self.config.vocab_size, "decoder_input_ids")
        elif decoder_inputs_embeds is not None and (
            decoder_inputs_embeds.dim() != 3 or 0 in decoder_inputs_embeds.shape[:2]
        ):
            raise ValueError(
                f"`decoder_inputs_embeds` must have shape (batch, tgt_len, embedding_size), got "
                f"{tuple(decoder_inputs_embeds.shape)}"
            )

        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids, attention_mask, inputs_embeds, output_hidden_states=output_hidden_states, return_dict=True
            )
        else:
            encoder_outputs = self.callers_encoder_outputs(encoder_outputs, check_values=starting)
        encoder_hidden_states = encoder_outputs.last_hidden_state
        check_source_mask(attention_mask, encoder_hidden_states.shape)

        output_vectors, cross_attention, decoder_hidden_states = self.decoder(
            decoder_input_ids,
            decoder_inputs_embeds,
            encoder_hidden_states,
            encoder_outputs.attention_keys,
            encoder_outputs.final_hidden_state,
            attention_mask=attention_mask,
            cache=state_cache,
            output_hidden_states=output_hidden_states,
        )
        return SimpleS2SRun(output_vectors, cross_attention, decoder_hidden_states, encoder_outputs, cache)

    def callers_encoder_outputs(
        self, encoder_outputs: SimpleS2SEncoderOutput | tuple, check_values: bool = True
    ) -> SimpleS2SEncoderOutput:
        """`encoder_outputs` passed in (by generate() or a user) as a `SimpleS2SEncoderOutput`: a tuple
        `(last_hidden_state, final_hidden_state[, attention_keys])` is wrapped, missing keys are projected, and (with
        `check_values`) NaN or inf is refused: it would silently spread to every logit."""
        if not isinstance(encoder_outputs, ModelOutput):
            names = ("last_hidden_state", "final_hidden_state", "attention_keys")
            encoder_outputs = SimpleS2SEncoderOutput(**dict(zip(names, encoder_outputs)))
        for name in ("last_hidden_state", "final_hidden_state"):
            value = encoder_outputs.get(name)
            if value is not None and check_values:
                torch_compilable_check(torch.isfinite(value).all(), f"`encoder_outputs.{name}` contains NaN or inf")
        if encoder_outputs.get("attention_keys") is None:
            encoder_outputs = SimpleS2SEncoderOutput(
                **{**encoder_outputs, "attention_keys": self.encoder.project_keys(encoder_outputs.last_hidden_state)}
            )
        return encoder_outputs


class SimpleS2SForConditionalGeneration(SimpleS2SPreTrainedModel, GenerationMixin):
    """SimpleS2S with the output layer over the vocabulary: training loss and `generate()`."""

    def __init__(self, config: SimpleS2SConfig):
        super().__init__(config)
        self.model = SimpleS2SModel(config)
        self.lm_head = nn.Linear(config.embedding_size, config.vocab_size)
        self.post_init()
        self.set_training_step(0)

    def set_training_step(self, step: int) -> float:
        """Set (and return) `teacher_forcing_ratio` for this training step from the config's scheduled sampling.

        `ScheduledSamplingCallback` calls it at every `Seq2SeqTrainer` step. Below 1, a training forward with
        `labels` decodes step by step and feeds, in place of each gold input, a token sampled from the model's
        own prediction with probability 1 - ratio. Evaluation and generation are not affected.
        """
        self.teacher_forcing_ratio = teacher_forcing_ratio(
            self.config.scheduled_sampling, self.config.scheduled_sampling_k, step
        )
        return self.teacher_forcing_ratio

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear):
        self.lm_head = new_embeddings

    def _resize_token_embeddings(self, new_num_tokens, pad_to_multiple_of=None, mean_resizing=True):
        # The default resizes the input embedding (the encoder's) and the output layer; a decoder embedding of its
        # own must follow, or the decoder would keep the old vocabulary.
        if not self.config.share_embeddings:
            self.model.decoder.embed_tokens = self._get_resized_embeddings(
                self.model.decoder.embed_tokens, new_num_tokens, pad_to_multiple_of, mean_resizing
            )
        return super()._resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def _validate_generation_mode(self, generation_mode, generation_config, generation_mode_kwargs) -> None:
        # transformers takes a count below 1 as it comes: a ZeroDivisionError (0) or a negative tensor size (-2)
        for name in ("num_beams", "num_return_sequences"):
            value = getattr(generation_config, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
        super()._validate_generation_mode(generation_mode, generation_config, generation_mode_kwargs)

    def create_masks_for_generate(self, **kwargs) -> None:
        # generate() builds causal masks for compileable caches; a recurrent decoder is causal by construction.
        return None

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: SimpleS2SEncoderOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        decoder_inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
    ) -> Seq2SeqLMOutput | tuple:
        r"""
        Args:
            labels: `(batch, tgt_len)` target ids ending with `eos`, -100 where no loss is wanted. Without
                `decoder_input_ids`, the decoder inputs are the labels shifted right behind
                `decoder_start_token_id` (teacher forcing). With labels, no cache is built unless `use_cache=True`.
            logits_to_keep: compute the logits of the last `logits_to_keep` positions only (0: all), or of the
                positions a 1-D tensor lists; generate() asks for the last one. Ignored with `labels`.

        The other arguments are those of [`SimpleS2SModel.forward`].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        use_cache = use_cache if use_cache is not None else self.config.use_cache and labels is None
        if labels is not None:
            check_token_ids(labels, self.config.vocab_size, "labels", ignore_index=-100)
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        with_coverage_loss = labels is not None and self.config.coverage_loss_weight > 0
        if self.training and labels is None and self.config.coverage_loss_weight > 0:
            # Seq2SeqTrainer's `label_smoothing_factor` takes the labels away and computes the loss from the logits:
            # the coverage loss would be dropped without a word.
            logger.warning_once(
                f"`coverage_loss_weight` is {self.config.coverage_loss_weight} but this training forward got no "
                "`labels`, so no coverage loss is computed; with Seq2SeqTrainer, set `label_smoothing` in the model "
                "config instead of `label_smoothing_factor`, which takes the labels away from the model"
            )
        state_cache = decoder_cache(cache, self.config)
        initial_coverage = None  # for the coverage loss, the coverage before these tokens
        if with_coverage_loss and state_cache is not None and state_cache.has_previous_state(0, 0):
            initial_coverage = coverage_so_far(state_cache)[:, 0]
        if self.training and cache is None and self.teacher_forcing_ratio < 1.0:  # gold inputs: decoder_input_ids
            run, logits = self._forward_with_scheduled_sampling(
                decoder_input_ids, input_ids, attention_mask, encoder_outputs, inputs_embeds, output_hidden_states
            )
            cross_attention, decoder_hidden_states, encoder_outputs = run[1:4]
        else:
            run = self.model.run(
                input_ids,
                attention_mask,
                decoder_input_ids,
                encoder_outputs,
                cache,
                inputs_embeds,
                decoder_inputs_embeds,
                use_cache,
                output_hidden_states,
            )
            output_vectors, cross_attention = run.output_vectors, run.cross_attention  # (batch, tgt_len, emb)
            decoder_hidden_states, encoder_outputs, cache = run.decoder_hidden_states, run.encoder_outputs, run.cache
            if labels is None and (not isinstance(logits_to_keep, int) or logits_to_keep > 0):
                kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
                output_vectors = output_vectors[:, kept]
            logits = self.output_logits(output_vectors)  # (batch, tgt_len or kept, vocab)

        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:2]:
                raise ValueError(
                    f"`labels` has shape {tuple(labels.shape)} but the decoder inputs have shape "
                    f"{tuple(logits.shape[:2])}; they must match"
                )
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(),
                labels.flatten(),
                ignore_index=-100,
                label_smoothing=self.config.label_smoothing,
            )
            if with_coverage_loss:
                weights = cross_attention[:, 0].float()  # (batch, tgt_len, src_len)
                loss = loss + self.config.coverage_loss_weight * coverage_loss(
                    weights, labels != -100, initial_coverage
                )

        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=cache if use_cache else None,
            decoder_hidden_states=decoder_hidden_states,
            cross_attentions=(cross_attention,) if output_attentions else None,  # one layer, one head
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def output_logits(self, output_vectors: torch.Tensor) -> torch.Tensor:
        """The decoder's output vectors `(batch, tgt_len, emb)` -> vocabulary logits `(batch, tgt_len, vocab)`."""
        return self.lm_head(self.model.decoder.dropout(output_vectors))

    def _forward_with_scheduled_sampling(
        self,
        decoder_input_ids: torch.LongTensor,
        input_ids: torch.LongTensor | None,
        attention_mask: torch.Tensor | None,
        encoder_outputs: SimpleS2SEncoderOutput | tuple | None,
        inputs_embeds: torch.FloatTensor | None,
        output_hidden_states: bool | None,
    ) -> tuple[SimpleS2SRun, torch.Tensor]:
        """Decode one step at a time; the input of each next step is the gold token with probability
        `teacher_forcing_ratio`, else a token sampled from this step's prediction (per sequence, per step)."""
        if self.model.decoder.gradient_checkpointing:
            raise ValueError(
                "scheduled sampling feeds each step's prediction to the next, which gradient checkpointing cannot "
                "recompute: use one of the two"
            )
        if encoder_outputs is None:
            encoder_outputs = self.model.encoder(
                input_ids, attention_mask, inputs_embeds, output_hidden_states=output_hidden_states, return_dict=True
            )
        else:
            encoder_outputs = self.model.callers_encoder_outputs(encoder_outputs)
        decoder = self.model.decoder
        values, keys = encoder_outputs.last_hidden_state, encoder_outputs.attention_keys
        padding_mask = source_padding_mask(attention_mask)
        states, coverage = decoder.start(encoder_outputs.final_hidden_state, keys)
        step_embeds, step_states, step_weights, step_vectors, step_logits = [], [], [], [], []
        next_input = decoder_input_ids[:, :1]  # the start token, (batch, 1)
        for t in range(decoder_input_ids.shape[1]):
            embedded = decoder.dropout(decoder.embed_tokens(next_input))  # (batch, 1, emb)
            states, weights = decoder.step(embedded[:, 0], states, keys, values, padding_mask, coverage)
            if coverage is not None:
                coverage = coverage + weights
            vectors = decoder.output_vectors(states[-1].unsqueeze(1), weights.unsqueeze(1), values, embedded)
            logits = self.output_logits(vectors)  # (batch, 1, vocab)
            step_embeds.append(embedded)
            step_states.append(states)
            step_weights.append(weights)
            step_vectors.append(vectors)
            step_logits.append(logits)
            if t + 1 < decoder_input_ids.shape[1]:
                gold = decoder_input_ids[:, t + 1 : t + 2]
                sampled = torch.multinomial(logits[:, 0].detach().float().softmax(dim=-1), 1)  # (batch, 1)
                use_gold = torch.rand(gold.shape, device=gold.device) < self.teacher_forcing_ratio
                next_input = torch.where(use_gold, gold, sampled)

        decoder_hidden_states = None
        if output_hidden_states:
            layer_outputs = [torch.stack([s[layer] for s in step_states], dim=1) for layer in range(len(states))]
            decoder_hidden_states = (torch.cat(step_embeds, dim=1), *layer_outputs)
        run = SimpleS2SRun(
            output_vectors=torch.cat(step_vectors, dim=1),  # (batch, tgt_len, emb)
            cross_attention=torch.cat(step_weights, dim=1).unsqueeze(1),  # (batch, 1, tgt_len, src_len)
            decoder_hidden_states=decoder_hidden_states,
            encoder_outputs=encoder_outputs,
            cache=None,
        )
        return run, torch.cat(step_logits, dim=1)


__all__ = [
    "SimpleS2SEncoderOutput",
    "SimpleS2SForConditionalGeneration",
    "SimpleS2SModel",
    "SimpleS2SPreTrainedModel",
]
