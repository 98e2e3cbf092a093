"""SimpleS2S: a (bi)GRU encoder and a GRU decoder with attention, as a native transformers model.

Attention is additive (Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and
Translate") or multiplicative (Luong et al. 2015, "Effective Approaches to Attention-based NMT", dot / general).
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

from .configuration_simple_s2s import SimpleS2SConfig

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


@dataclass
class SimpleS2SCache:
    """What a decoding step needs besides the encoder outputs; cost per step does not grow with the prefix.

    Args:
        decoder_state (`torch.FloatTensor` of shape `(decoder_layers, batch_size, hidden_size)`):
            The recurrent state after the last token fed.
        attention_keys (`torch.FloatTensor` of shape `(batch_size, src_len, hidden_size)`):
            The encoder outputs projected for scoring, computed once per source.
    """

    decoder_state: torch.Tensor
    attention_keys: torch.Tensor

    def reorder(self, beam_idx: torch.LongTensor) -> "SimpleS2SCache":
        # Beams never move across sources, so the per-source keys stay as they are; only the state follows.
        return SimpleS2SCache(self.decoder_state.index_select(1, beam_idx), self.attention_keys)


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
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            query: `(batch, tgt_len, hidden)` decoder states.
            keys: `(batch, src_len, hidden)` from `compute_keys`.
            values: `(batch, src_len, encoder_output_size)` encoder outputs.
            padding_mask: `(batch, 1, src_len)`, True on padded source positions, or None for no padding.

        Returns:
            context `(batch, tgt_len, encoder_output_size)` and weights `(batch, tgt_len, src_len)`, which sum
            to 1 over the real source tokens and are exactly 0 on pads (all 0 for a source that is only padding).
        """
        if self.attention_type == "bahdanau":
            energies = torch.tanh(self.query_proj(query).unsqueeze(2) + keys.unsqueeze(1))  # (batch, tgt, src, hidden)
            scores = self.energy(energies).squeeze(-1)  # (batch, tgt_len, src_len)
        else:
            scores = query @ keys.transpose(1, 2)  # (batch, tgt_len, src_len)
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
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must have shape (batch, src_len), got {tuple(input_ids.shape)}")
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
            )
        padding_mask = None if attention_mask is None else (attention_mask == 0).unsqueeze(1)  # (batch, 1, src)
        embeds = self.dropout(self.embed_tokens(input_ids))  # (batch, tgt_len, emb)
        keys, state = cache.attention_keys, cache.decoder_state

        if self.is_bahdanau:
            step_outputs, contexts, weights = [], [], []
            for t in range(input_ids.shape[1]):
                query = state[-1].unsqueeze(1)  # previous top-layer state, (batch, 1, hidden)
                context, step_weights = self.attention(query, keys, encoder_hidden_states, padding_mask)
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
            context, attention_weights = self.attention(gru_outputs, keys, encoder_hidden_states, padding_mask)
            features = torch.cat([gru_outputs, context], dim=-1)

        output_vectors = torch.tanh(self.output_proj(features))  # (batch, tgt_len, emb)
        new_cache = SimpleS2SCache(decoder_state=state, attention_keys=keys)
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

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` writes the `auto_map` entry of the saved class only; name every entry point so
        # that AutoModel and AutoModelForSeq2SeqLM both load the folder with `trust_remote_code=True`.
        self.config.auto_map = {**(self.config.auto_map or {}), **AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)

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
        elif not isinstance(encoder_outputs, ModelOutput):
            encoder_outputs = SimpleS2SEncoderOutput(
                last_hidden_state=encoder_outputs[0],
                final_hidden_state=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
            )
        encoder_hidden_states = encoder_outputs.last_hidden_state
        if attention_mask is not None and attention_mask.shape != encoder_hidden_states.shape[:2]:
            raise ValueError(
                f"`attention_mask` has shape {tuple(attention_mask.shape)} but the source has shape "
                f"{tuple(encoder_hidden_states.shape[:2])}; they must match"
            )
        if cache is None and not torch.isfinite(encoder_hidden_states).all():
            raise ValueError("`encoder_outputs.last_hidden_state` contains NaN or inf")

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

        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            encoder_outputs=encoder_outputs,
            cache=cache,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.lm_head(self.model.decoder.dropout(outputs.last_hidden_state))  # (batch, tgt_len, vocab)

        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:2]:
                raise ValueError(
                    f"`labels` has shape {tuple(labels.shape)} but the decoder inputs have shape "
                    f"{tuple(logits.shape[:2])}; they must match"
                )
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)

        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            cross_attentions=outputs.cross_attentions,
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

    def _reorder_cache(self, cache: SimpleS2SCache, beam_idx: torch.LongTensor) -> SimpleS2SCache:
        # Called by beam search after each step: the hypotheses kept may come from other beams of the same source.
        return cache.reorder(beam_idx)


__all__ = [
    "SimpleS2SCache",
    "SimpleS2SEncoderOutput",
    "SimpleS2SForConditionalGeneration",
    "SimpleS2SModel",
    "SimpleS2SPreTrainedModel",
]
