"""SimpleS2S: a (bi)GRU encoder and a GRU decoder with attention, as a native transformers model.

Attention is additive (Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and
Translate") or multiplicative (Luong et al. 2015, "Effective Approaches to Attention-based NMT", dot / general).
Optional: coverage (Tu et al. 2016, "Modeling Coverage for NMT"; See et al. 2017, "Get To The Point") and
scheduled sampling (Bengio et al. 2015, "Scheduled Sampling for Sequence Prediction with RNNs").
"""

import os
import shutil
import tempfile
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

from .configuration_simple_s2s import SimpleS2SConfig
from .saving_simple_s2s import (
    CHECKSUMS_NAME,
    STAGING_PREFIX,
    check_saved_folder,
    move_saved_files_into,
    sha256_of_file,
)

AUTO_MAP = {
    "AutoConfig": "configuration_simple_s2s.SimpleS2SConfig",
    "AutoModel": "modeling_simple_s2s.SimpleS2SModel",
    "AutoModelForSeq2SeqLM": "modeling_simple_s2s.SimpleS2SForConditionalGeneration",
}


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher forcing inputs: `labels` moved one step right behind the start token, -100 replaced by pad."""
    decoder_input_ids = labels.new_full(labels.shape, decoder_start_token_id)
    decoder_input_ids[:, 1:] = labels[:, :-1]
    return decoder_input_ids.masked_fill(decoder_input_ids == -100, pad_token_id)


def check_token_ids(token_ids: torch.Tensor, vocab_size: int, name: str) -> None:
    """Raise a `ValueError` naming the first id outside `[0, vocab_size)`, before the embedding fails on it."""
    if token_ids.is_floating_point() or token_ids.is_complex() or token_ids.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold integer token ids, got dtype {token_ids.dtype}")
    if token_ids.numel() == 0:
        return
    out_of_range = (token_ids < 0) | (token_ids >= vocab_size)
    if out_of_range.any():
        bad_id = token_ids[out_of_range][0].item()
        raise ValueError(f"`{name}` holds token id {bad_id}, outside the vocabulary (vocab_size={vocab_size})")


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
            Batch-first, so that `generate()` can expand it for beams like any other encoder output.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            The embedded input and the top-layer outputs.
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def as_encoder_output(encoder_outputs: "SimpleS2SEncoderOutput | tuple") -> ModelOutput:
    """A caller's `encoder_outputs` as a `SimpleS2SEncoderOutput`: the tuple `(last_hidden_state, final_hidden_state)`
    is wrapped, a `ModelOutput` (what the encoder and `generate()` pass) is returned as it is."""
    if isinstance(encoder_outputs, ModelOutput):
        return encoder_outputs
    return SimpleS2SEncoderOutput(
        last_hidden_state=encoder_outputs[0],
        final_hidden_state=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
    )


def check_source_mask(attention_mask: torch.Tensor | None, encoder_hidden_states: torch.Tensor) -> None:
    """Raise a `ValueError` unless `attention_mask` `(batch, src_len)` matches the encoder outputs `(batch, src_len, _)`."""
    if attention_mask is not None and attention_mask.shape != encoder_hidden_states.shape[:2]:
        raise ValueError(
            f"`attention_mask` has shape {tuple(attention_mask.shape)} but the source has shape "
            f"{tuple(encoder_hidden_states.shape[:2])}; they must match"
        )


@dataclass
class SimpleS2SCache:
    """What a decoding step needs besides the encoder outputs; cost per step does not grow with the prefix.

    Args:
        decoder_state (`torch.FloatTensor` of shape `(decoder_layers, batch_size, hidden_size)`):
            The recurrent state after the last token fed.
        attention_keys (`torch.FloatTensor` of shape `(batch_size, src_len, hidden_size)`):
            The encoder outputs projected for scoring, computed once per source.
        coverage (`torch.FloatTensor` of shape `(batch_size, src_len)`, *optional*):
            With `config.coverage`: the sum of the attention weights of all steps so far (0 on pads).
    """

    decoder_state: torch.Tensor
    attention_keys: torch.Tensor
    coverage: torch.Tensor | None = None

    def reorder(self, beam_idx: torch.LongTensor) -> "SimpleS2SCache":
        # Beams never move across sources, so the per-source keys stay as they are; the state and coverage follow.
        coverage = None if self.coverage is None else self.coverage.index_select(0, beam_idx)
        return SimpleS2SCache(self.decoder_state.index_select(1, beam_idx), self.attention_keys, coverage)


class SimpleS2SAttention(nn.Module):
    """Scores decoder queries against the encoder outputs: additive (Bahdanau) or dot / general (Luong)."""

    def __init__(self, config: SimpleS2SConfig):
        super().__init__()
        self.attention_type = config.attention_type
        self.hidden_size = config.hidden_size
        self.encoder_output_size = config.encoder_output_size
        if config.attention_type == "bahdanau":  # e_ti = v^T tanh(W s_{i-1} + U h_j)
            self.key_proj = nn.Linear(config.encoder_output_size, config.hidden_size, bias=False)
            self.query_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
            self.energy = nn.Linear(config.hidden_size, 1, bias=False)
        elif config.attention_type == "luong_general":  # score = h_t^T W_a h_s
            self.key_proj = nn.Linear(config.encoder_output_size, config.hidden_size, bias=False)
        if config.coverage:
            # Bahdanau: e_ti = v^T tanh(W s + U h_j + w_c c_ij) (See et al.); Luong: score + (h_t^T w_c) c_ij, the
            # dot product of the query with a key moved by w_c c_ij, so that dot scoring gets coverage too.
            in_size, out_size = (
                (1, config.hidden_size) if self.attention_type == "bahdanau" else (config.hidden_size, 1)
            )
            self.coverage_proj = nn.Linear(in_size, out_size, bias=False)

    def compute_keys(self, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """Project the encoder outputs once per source: (batch, src_len, enc_size) -> (batch, src_len, hidden)."""
        if self.attention_type != "luong_dot":
            return self.key_proj(encoder_hidden_states)
        if self.encoder_output_size == self.hidden_size:
            return encoder_hidden_states
        # Parameter-free dot scoring against a bidirectional encoder: sum the two directions (as the PyTorch
        # chatbot tutorial does) so the keys have the decoder state's size.
        forward_states, backward_states = encoder_hidden_states.split(self.hidden_size, dim=-1)
        return forward_states + backward_states

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        padding_mask: torch.Tensor | None,
        coverage: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            query: `(batch, tgt_len, hidden)` decoder states.
            keys: `(batch, src_len, hidden)` from `compute_keys`.
            values: `(batch, src_len, encoder_output_size)` encoder outputs.
            padding_mask: `(batch, 1, src_len)`, True on padded source positions, or None for no padding.
            coverage: `(batch, 1, src_len)` past attention summed, with `config.coverage` (then tgt_len is 1).

        Returns:
            context `(batch, tgt_len, encoder_output_size)` and weights `(batch, tgt_len, src_len)`, which sum
            to 1 over the real source tokens and are exactly 0 on pads (all 0 for a source that is only padding).
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
        if padding_mask is not None:
            # finfo.min rather than -inf: a source that is all padding gets uniform weights, zeroed below, not NaN
            scores = scores.masked_fill(padding_mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        if padding_mask is not None:
            weights = weights.masked_fill(padding_mask, 0.0)
        context = weights @ values  # (batch, tgt_len, encoder_output_size)
        return context, weights


class SimpleS2SEncoder(nn.Module):
    """Embeddings, dropout and a multi-layer (bi)GRU run over packed sequences, whatever side the padding is on."""

    main_input_name = "input_ids"

    def __init__(self, config: SimpleS2SConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(
            config.embedding_size,
            config.hidden_size,
            num_layers=config.encoder_layers,
            dropout=config.dropout if config.encoder_layers > 1 else 0.0,
            bidirectional=config.bidirectional_encoder,
            batch_first=True,
        )

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SimpleS2SEncoderOutput | tuple:
        """
        Args:
            input_ids: `(batch, src_len)` source token ids.
            attention_mask: `(batch, src_len)`, 1 on real tokens and 0 on pads (left, right or both sides).
                None means no padding.
            output_attentions: accepted for the `generate()` interface; a GRU encoder has no self-attention.
        """
        check_token_ids(input_ids, self.config.vocab_size, "input_ids")
        if input_ids.dim() != 2 or 0 in input_ids.shape:
            raise ValueError(
                f"`input_ids` must have shape (batch, src_len) with at least one row and one token, got "
                f"{tuple(input_ids.shape)}"
            )
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`attention_mask` has shape {tuple(attention_mask.shape)} but `input_ids` has shape "
                f"{tuple(input_ids.shape)}; they must match"
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        embeds = self.dropout(self.embed_tokens(input_ids))  # (batch, src_len, emb)

        if attention_mask is None or bool(attention_mask.all()):
            outputs, final_states = self.gru(embeds)  # (batch, src_len, enc_size), (layers * dirs, batch, hidden)
        else:
            outputs, final_states = self._run_packed(embeds, attention_mask.bool())

        if self.config.bidirectional_encoder:
            final_hidden_state = torch.cat([final_states[-2], final_states[-1]], dim=-1)  # (batch, 2 * hidden)
        else:
            final_hidden_state = final_states[-1]  # (batch, hidden)

        hidden_states = (embeds, outputs) if output_hidden_states else None
        if not return_dict:
            return tuple(v for v in (outputs, final_hidden_state, hidden_states) if v is not None)
        return SimpleS2SEncoderOutput(
            last_hidden_state=outputs, final_hidden_state=final_hidden_state, hidden_states=hidden_states
        )

    def _run_packed(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size, src_len, _ = embeds.shape
        lengths = mask.sum(dim=1)  # (batch,)
        # Move each row's real tokens to the front, in order (a stable sort puts True before False once negated),
        # so that left-, right- and mixed padding all pack the same way; the outputs are moved back afterwards.
        order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)  # (batch, src_len)
        gathered = embeds.gather(1, order.unsqueeze(-1).expand_as(embeds))
        packed = pack_padded_sequence(
            gathered, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )  # a row of only padding runs one (pad) step and is zeroed below
        packed_outputs, final_states = self.gru(packed)
        front_outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=src_len)
        outputs = torch.zeros_like(front_outputs).scatter(
            1, order.unsqueeze(-1).expand_as(front_outputs), front_outputs
        )  # (batch, src_len, enc_size), back in the input's positions
        outputs = outputs.masked_fill(~mask.unsqueeze(-1), 0.0)
        final_states = final_states.masked_fill((lengths == 0).view(1, batch_size, 1), 0.0)
        return outputs, final_states


class SimpleS2SDecoder(nn.Module):
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
        self.gru = nn.GRU(
            gru_input_size,
            config.hidden_size,
            num_layers=config.decoder_layers,
            dropout=config.dropout if config.decoder_layers > 1 else 0.0,
            batch_first=True,
        )
        # Bahdanau's deep output tanh(W[s; c; e]) or Luong's attentional layer tanh(W[c; h]), sized like the
        # embedding so that the output layer can share the embedding matrix.
        output_input_size = config.hidden_size + config.encoder_output_size
        if self.is_bahdanau:
            output_input_size += config.embedding_size
        self.output_proj = nn.Linear(output_input_size, config.embedding_size)

    def initial_state(self, final_hidden_state: torch.Tensor) -> torch.Tensor:
        """(batch, encoder_output_size) -> (decoder_layers, batch, hidden)."""
        batch_size = final_hidden_state.shape[0]
        state = torch.tanh(self.bridge(final_hidden_state))  # (batch, layers * hidden)
        state = state.view(batch_size, self.config.decoder_layers, self.config.hidden_size)
        return state.transpose(0, 1).contiguous()

    def forward(
        self,
        input_ids: torch.LongTensor,
        encoder_hidden_states: torch.Tensor,
        final_hidden_state: torch.Tensor | None,
        attention_mask: torch.Tensor | None = None,
        cache: SimpleS2SCache | None = None,
    ) -> tuple[torch.Tensor, SimpleS2SCache, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """
        Args:
            input_ids: `(batch, tgt_len)` decoder inputs (the start token, then the target shifted right).
            encoder_hidden_states: `(batch, src_len, encoder_output_size)`.
            final_hidden_state: `(batch, encoder_output_size)`, used to start when there is no cache.
            attention_mask: `(batch, src_len)` source mask, or None for no padding.
            cache: the state after the tokens already fed, or None to start from the bridged encoder state.

        Returns:
            output vectors `(batch, tgt_len, embedding_size)`, the new cache, attention weights
            `(batch, tgt_len, src_len)`, and (embedded inputs, top-layer GRU outputs) as hidden states.
        """
        if cache is None:
            if final_hidden_state is None:
                raise ValueError(
                    "`encoder_outputs` must carry `final_hidden_state` (as SimpleS2SEncoder returns it) to start decoding"
                )
            cache = SimpleS2SCache(
                decoder_state=self.initial_state(final_hidden_state),
                attention_keys=self.attention.compute_keys(encoder_hidden_states),
                coverage=encoder_hidden_states.new_zeros(encoder_hidden_states.shape[:2])
                if self.config.coverage
                else None,
            )
        padding_mask = None if attention_mask is None else (attention_mask == 0).unsqueeze(1)  # (batch, 1, src)
        embeds = self.dropout(self.embed_tokens(input_ids))  # (batch, tgt_len, emb)
        keys, state = cache.attention_keys, cache.decoder_state
        coverage = None if cache.coverage is None else cache.coverage.unsqueeze(1)  # (batch, 1, src_len)

        if self.is_bahdanau:
            step_outputs, contexts, weights = [], [], []
            for t in range(input_ids.shape[1]):
                query = state[-1].unsqueeze(1)  # previous top-layer state, (batch, 1, hidden)
                context, step_weights = self.attention(query, keys, encoder_hidden_states, padding_mask, coverage)
                if coverage is not None:
                    coverage = coverage + step_weights
                step_output, state = self.gru(torch.cat([embeds[:, t : t + 1], context], dim=-1), state)
                step_outputs.append(step_output)
                contexts.append(context)
                weights.append(step_weights)
            gru_outputs = torch.cat(step_outputs, dim=1)  # (batch, tgt_len, hidden)
            context = torch.cat(contexts, dim=1)  # (batch, tgt_len, enc_size)
            attention_weights = torch.cat(weights, dim=1)  # (batch, tgt_len, src_len)
            features = torch.cat([gru_outputs, context, embeds], dim=-1)
        else:
            gru_outputs, state = self.gru(embeds, state)  # (batch, tgt_len, hidden)
            if coverage is None:
                context, attention_weights = self.attention(gru_outputs, keys, encoder_hidden_states, padding_mask)
            else:  # each step's scores depend on the weights of the steps before it
                contexts, weights = [], []
                for t in range(input_ids.shape[1]):
                    step_context, step_weights = self.attention(
                        gru_outputs[:, t : t + 1], keys, encoder_hidden_states, padding_mask, coverage
                    )
                    coverage = coverage + step_weights
                    contexts.append(step_context)
                    weights.append(step_weights)
                context = torch.cat(contexts, dim=1)  # (batch, tgt_len, enc_size)
                attention_weights = torch.cat(weights, dim=1)  # (batch, tgt_len, src_len)
            features = torch.cat([gru_outputs, context], dim=-1)

        output_vectors = torch.tanh(self.output_proj(features))  # (batch, tgt_len, emb)
        new_cache = SimpleS2SCache(state, keys, None if coverage is None else coverage.squeeze(1))
        return output_vectors, new_cache, attention_weights, (embeds, gru_outputs)


class SimpleS2SPreTrainedModel(PreTrainedModel):
    config: SimpleS2SConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["SimpleS2SEncoder", "SimpleS2SDecoder"]
    # A recurrent state cannot be rolled back, so assisted generation must refuse it.
    _is_stateful = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # transformers' default does not know nn.GRU; uniform [-r, r] for every weight is the classic RNN NMT init.
        bound = self.config.initializer_range
        if isinstance(module, nn.GRU):
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

    def _tied_parameters(self) -> dict[str, str]:
        """The part of `_tied_weights_keys` (`{target: source}`) that the config switches on."""
        return {}

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        # The default only ties when `tie_word_embeddings` is set; `share_embeddings` ties independently of it.
        if all_submodels:
            return super().get_expanded_tied_weights_keys(all_submodels=True)
        return self._tied_parameters()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, from safetensors only; a local folder is first checked for a half-finished
        save, a config.json with wrong values and truncated or corrupted weights, each refused with the file's name."""
        # Weights load from safetensors only: a `.bin` checkpoint is a pickle, and unpickling can run code.
        if kwargs.get("use_safetensors") is False:
            raise ValueError("`use_safetensors=False` is not supported: SimpleS2S loads weights from safetensors only")
        kwargs["use_safetensors"] = True
        folder = os.path.join(os.fspath(pretrained_model_name_or_path or ""), kwargs.get("subfolder", ""))
        if pretrained_model_name_or_path is not None and os.path.isdir(folder):
            names = os.listdir(folder)
            if not any(name.endswith(".safetensors") for name in names):
                pickled = sorted(name for name in names if name.endswith((".bin", ".pt", ".pth")))
                if pickled:
                    raise OSError(
                        f"{folder} holds pickled weights only ({', '.join(pickled)}), no model.safetensors. "
                        "SimpleS2S loads safetensors only, because unpickling can run code: load the checkpoint once "
                        "where you trust its origin and save it again with `save_pretrained`, which writes safetensors."
                    )
            config_given = isinstance(kwargs.get("config"), cls.config_class)
            check_saved_folder(folder, cls.config_class, check_config=not config_given)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    def save_pretrained(self, save_directory, is_main_process: bool = True, **kwargs):
        """`PreTrainedModel.save_pretrained`, made safe against crashes: the files are written into a staging folder
        inside `save_directory` and moved in only once complete, with checksums of the weights. A process killed
        while writing leaves the previous save loadable; one killed while moving leaves a marker that makes
        `from_pretrained` refuse the folder."""
        # `register_for_auto_class` writes the `auto_map` entry of the saved class only; name every entry point so
        # that AutoModel and AutoModelForSeq2SeqLM both load the folder with `trust_remote_code=True`.
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **AUTO_MAP}
        target = os.fspath(save_directory)
        if not is_main_process or os.path.isfile(target):  # nothing is written (the parent logs a path error)
            return super().save_pretrained(target, is_main_process=is_main_process, **kwargs)
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(target):
            if name.startswith(STAGING_PREFIX):  # left behind by a process killed while writing
                shutil.rmtree(os.path.join(target, name), ignore_errors=True)
        if kwargs.get("push_to_hub"):
            kwargs.setdefault("repo_id", os.path.basename(os.path.abspath(target)))
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target)
        try:
            result = super().save_pretrained(staging, is_main_process=True, **kwargs)
            weight_files = sorted(name for name in os.listdir(staging) if name.endswith(".safetensors"))
            with open(os.path.join(staging, CHECKSUMS_NAME), "w", encoding="utf-8") as checksums:
                checksums.writelines(f"{sha256_of_file(os.path.join(staging, n))}  {n}\n" for n in weight_files)
            move_saved_files_into(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return result

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The cache is the recurrent state (SimpleS2SCache), not a key/value cache: generate must not build one.
        return False


class SimpleS2SModel(SimpleS2SPreTrainedModel):
    """The bare encoder-decoder, returning the decoder's output vectors (before the vocabulary projection)."""

    _tied_weights_keys = {"encoder.embed_tokens.weight": "decoder.embed_tokens.weight"}  # if share_embeddings

    def __init__(self, config: SimpleS2SConfig):
        super().__init__(config)
        self.encoder = SimpleS2SEncoder(config)
        self.decoder = SimpleS2SDecoder(config)
        self.post_init()

    def _tied_parameters(self) -> dict[str, str]:
        return dict(self._tied_weights_keys) if self.config.share_embeddings else {}

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding):
        self.encoder.embed_tokens = value
        if self.config.share_embeddings:
            self.decoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> SimpleS2SEncoder:
        return self.encoder

    def get_decoder(self) -> SimpleS2SDecoder:
        return self.decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: SimpleS2SEncoderOutput | tuple | None = None,
        cache: SimpleS2SCache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqModelOutput | tuple:
        r"""
        Args:
            input_ids: `(batch, src_len)` source token ids.
            attention_mask: `(batch, src_len)`, 1 on real source tokens, 0 on pads (either side). None: no pads.
            decoder_input_ids: `(batch, tgt_len)`; with a `cache`, only the tokens not fed yet.
            decoder_attention_mask: accepted for interface compatibility; the decoder is causal and recurrent, so
                right-padded targets need no mask (their pads only follow the real tokens).
            encoder_outputs: a `SimpleS2SEncoderOutput` (or the tuple `(last_hidden_state, final_hidden_state)`).
            cache: a `SimpleS2SCache` returned by the previous call.
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        if decoder_input_ids is None:
            raise ValueError("`decoder_input_ids` (or `labels`, for SimpleS2SForConditionalGeneration) is required")
        if cache is None:  # generated ids are always in range; only check what a caller passed in
            check_token_ids(decoder_input_ids, self.config.vocab_size, "decoder_input_ids")

        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("Pass `input_ids` or `encoder_outputs`")
            encoder_outputs = self.encoder(
                input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states, return_dict=True
            )
        else:
            encoder_outputs = as_encoder_output(encoder_outputs)
        encoder_hidden_states = encoder_outputs.last_hidden_state
        check_source_mask(attention_mask, encoder_hidden_states)
        if cache is None:  # a caller's own encoder_outputs; NaN would silently spread to every logit
            for name in ("last_hidden_state", "final_hidden_state"):
                value = encoder_outputs.get(name)
                if value is not None and not torch.isfinite(value).all():
                    raise ValueError(f"`encoder_outputs.{name}` contains NaN or inf")

        output_vectors, new_cache, attention_weights, decoder_states = self.decoder(
            decoder_input_ids,
            encoder_hidden_states=encoder_hidden_states,
            final_hidden_state=encoder_outputs.get("final_hidden_state"),
            attention_mask=attention_mask,
            cache=cache,
        )

        output = Seq2SeqModelOutput(
            last_hidden_state=output_vectors,
            cache=new_cache if use_cache else None,
            decoder_hidden_states=decoder_states if output_hidden_states else None,
            # One layer with one head, in transformers' (batch, heads, tgt_len, src_len) layout.
            cross_attentions=(attention_weights.unsqueeze(1),) if output_attentions else None,
            encoder_last_hidden_state=encoder_hidden_states,
            encoder_hidden_states=encoder_outputs.get("hidden_states"),
        )
        return output if return_dict else output.to_tuple()


class SimpleS2SForConditionalGeneration(SimpleS2SPreTrainedModel, GenerationMixin):
    """SimpleS2S with the output layer over the vocabulary: training loss and `generate()`."""

    _tied_weights_keys = {"lm_head.weight": "model.decoder.embed_tokens.weight"}  # if tie_word_embeddings

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

    def _tied_parameters(self) -> dict[str, str]:
        return dict(self._tied_weights_keys) if self.config.tie_word_embeddings else {}

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear):
        self.lm_head = new_embeddings

    def get_encoder(self, modality: str | None = None) -> SimpleS2SEncoder:
        return self.model.encoder

    def get_decoder(self) -> SimpleS2SDecoder:
        return self.model.decoder

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

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: SimpleS2SEncoderOutput | tuple | None = None,
        cache: SimpleS2SCache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> Seq2SeqLMOutput | tuple:
        r"""
        Args:
            labels: `(batch, tgt_len)` target ids ending with `eos`, -100 where no loss is wanted. Without
                `decoder_input_ids`, the decoder inputs are the labels shifted right behind
                `decoder_start_token_id` (teacher forcing).

        The other arguments are those of [`SimpleS2SModel.forward`].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if labels is not None:
            if labels.dim() != 2:
                raise ValueError(f"`labels` must have shape (batch, tgt_len), got {tuple(labels.shape)}")
            if decoder_input_ids is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        elif decoder_input_ids is None:
            raise ValueError("Pass `labels` (training) or `decoder_input_ids` to SimpleS2SForConditionalGeneration")

        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        with_coverage_loss = labels is not None and self.config.coverage_loss_weight > 0
        if self.training and labels is None and self.config.coverage_loss_weight > 0:
            # Seq2SeqTrainer's `label_smoothing_factor` takes the labels away and computes the loss from the logits:
            # the coverage loss would be dropped without a word.
            raise ValueError(
                f"`coverage_loss_weight` is {self.config.coverage_loss_weight} but training forward got no `labels`; "
                "with Seq2SeqTrainer, set `label_smoothing` in the model config instead of `label_smoothing_factor`"
            )
        if cache is not None and labels is None and encoder_outputs is not None:
            # generate()'s steps after the first. Unless attentions or hidden states are asked for, skip the inner
            # model and its Seq2SeqModelOutput: a fixed Python cost paid at every step.
            output_hidden_states = (
                output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
            )
            if not (output_attentions or output_hidden_states):
                output = self._decoding_step(decoder_input_ids, attention_mask, encoder_outputs, cache, use_cache)
                return output if return_dict else output.to_tuple()
        model_kwargs = dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_outputs=encoder_outputs,
            use_cache=use_cache,
            output_attentions=output_attentions or with_coverage_loss,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        if self.training and cache is None and self.teacher_forcing_ratio < 1.0:  # gold inputs: decoder_input_ids
            outputs, logits = self._forward_with_scheduled_sampling(decoder_input_ids, **model_kwargs)
        else:
            outputs = self.model(decoder_input_ids=decoder_input_ids, cache=cache, **model_kwargs)
            logits = self.output_logits(outputs.last_hidden_state)  # (batch, tgt_len, vocab)

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
                initial_coverage = None if cache is None else cache.coverage
                weights = outputs.cross_attentions[0][:, 0].float()  # (batch, tgt_len, src_len)
                loss = loss + self.config.coverage_loss_weight * coverage_loss(
                    weights, labels != -100, initial_coverage
                )

        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            cross_attentions=outputs.cross_attentions if output_attentions else None,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def prepare_inputs_for_generation(
        self,
        decoder_input_ids: torch.LongTensor,
        next_sequence_length: int | None = None,
        cache: SimpleS2SCache | None = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ) -> dict:
        # Called by generate() at every step. The default also builds position ids, 4-D masks and key/value-cache
        # slices (none of which this model has) and, for a model loaded as remote code, inspects `forward`'s
        # signature each time; here only the tokens not fed yet are cut off, the rest goes to `forward` unchanged.
        if next_sequence_length is not None:
            decoder_input_ids = decoder_input_ids[:, -next_sequence_length:]  # (batch, 1) with a cache
        kwargs.pop("labels", None)
        return {"decoder_input_ids": decoder_input_ids, "cache": cache, **kwargs}

    def _decoding_step(
        self,
        decoder_input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None,
        encoder_outputs: SimpleS2SEncoderOutput | tuple,
        cache: SimpleS2SCache,
        use_cache: bool | None,
    ) -> Seq2SeqLMOutput:
        """A step of `generate()` after the first: what `forward` computes from a cache without labels, attentions or
        hidden states, with the decoder and the output layer called directly (no inner `Seq2SeqModelOutput`)."""
        encoder_outputs = as_encoder_output(encoder_outputs)
        encoder_hidden_states = encoder_outputs.last_hidden_state  # (batch, src_len, enc_size)
        check_source_mask(attention_mask, encoder_hidden_states)
        output_vectors, new_cache, _, _ = self.model.decoder(
            decoder_input_ids,  # (batch, tgt_len), tgt_len 1 in generate()
            encoder_hidden_states=encoder_hidden_states,
            final_hidden_state=encoder_outputs.get("final_hidden_state"),  # unused: the cache holds the state
            attention_mask=attention_mask,
            cache=cache,
        )
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        return Seq2SeqLMOutput(
            logits=self.output_logits(output_vectors),  # (batch, tgt_len, vocab)
            cache=new_cache if use_cache else None,
            encoder_last_hidden_state=encoder_hidden_states,
            encoder_hidden_states=encoder_outputs.get("hidden_states"),
        )

    def output_logits(self, output_vectors: torch.Tensor) -> torch.Tensor:
        """The decoder's output vectors `(batch, tgt_len, emb)` -> vocabulary logits `(batch, tgt_len, vocab)`."""
        return self.lm_head(self.model.decoder.dropout(output_vectors))

    def _reorder_cache(self, cache: SimpleS2SCache, beam_idx: torch.LongTensor) -> SimpleS2SCache:
        # Called by beam search after each step: the hypotheses kept may come from other beams of the same source.
        return cache.reorder(beam_idx)

    def _forward_with_scheduled_sampling(
        self, decoder_input_ids: torch.LongTensor, **model_kwargs
    ) -> tuple[Seq2SeqModelOutput, torch.Tensor]:
        """Decode one step at a time; the input of each next step is the gold token with probability
        `teacher_forcing_ratio`, else a token sampled from this step's prediction (per sequence, per step)."""
        if model_kwargs["encoder_outputs"] is None:  # encode once, not at every step
            model_kwargs["encoder_outputs"] = self.model.encoder(
                model_kwargs["input_ids"],
                attention_mask=model_kwargs["attention_mask"],
                output_hidden_states=model_kwargs["output_hidden_states"],
                return_dict=True,
            )
        cache, steps, step_logits = None, [], []
        next_input = decoder_input_ids[:, :1]  # the start token, (batch, 1)
        for t in range(decoder_input_ids.shape[1]):
            out = self.model(decoder_input_ids=next_input, cache=cache, **{**model_kwargs, "use_cache": True})
            logits = self.output_logits(out.last_hidden_state)  # (batch, 1, vocab)
            cache = out.cache
            steps.append(out)
            step_logits.append(logits)
            if t + 1 < decoder_input_ids.shape[1]:
                gold = decoder_input_ids[:, t + 1 : t + 2]
                sampled = torch.multinomial(logits[:, 0].detach().float().softmax(dim=-1), 1)  # (batch, 1)
                use_gold = torch.rand(gold.shape, device=gold.device) < self.teacher_forcing_ratio
                next_input = torch.where(use_gold, gold, sampled)

        def joined(parts):  # per-step tensors (.., 1, ..) joined along the target axis
            return None if parts[0] is None else torch.cat(parts, dim=-2 if parts[0].dim() == 4 else 1)

        outputs = Seq2SeqModelOutput(
            last_hidden_state=joined([o.last_hidden_state for o in steps]),  # (batch, tgt_len, emb)
            cache=cache if model_kwargs["use_cache"] is not False else None,
            decoder_hidden_states=None
            if steps[0].decoder_hidden_states is None
            else tuple(joined(parts) for parts in zip(*(o.decoder_hidden_states for o in steps))),
            cross_attentions=None
            if steps[0].cross_attentions is None
            else (joined([o.cross_attentions[0] for o in steps]),),
            encoder_last_hidden_state=steps[0].encoder_last_hidden_state,
            encoder_hidden_states=steps[0].encoder_hidden_states,
        )
        return outputs, torch.cat(step_logits, dim=1)


__all__ = [
    "SimpleS2SCache",
    "SimpleS2SEncoderOutput",
    "SimpleS2SForConditionalGeneration",
    "SimpleS2SModel",
    "SimpleS2SPreTrainedModel",
]
