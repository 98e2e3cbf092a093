"""Several SimpleS2S models that decode as one through `generate()` (greedy, beam, sampling, logits processors): at
every step the next-token distribution is the mean of the members' (the log of the mean of their softmaxes, as the
ensembles of OpenNMT-py, Marian and fairseq compute it).

    ensemble = SimpleS2SEnsemble.from_pretrained(["outputs/run-a", "outputs/run-b"])
    output_ids = ensemble.generate(**tokenizer(texts, padding=True, return_tensors="pt"), num_beams=5)

The members may differ in size, layers and attention type; they must share the tokenizer. The forward returns
log-probabilities as its logits, so beam scores are the ensemble's log-probabilities. The cache is the one generate()
builds from `SimpleS2SEnsembleConfig.layer_types`: the members' decoder layers one after the other, each member reading
and writing its own slice, so that generate()'s beam reordering of the whole cache reorders every member's state.
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoModelForSeq2SeqLM,
    DynamicCache,
    EncoderDecoderCache,
    GenerationConfig,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.cache_utils import Cache
from transformers.modeling_outputs import ModelOutput, Seq2SeqLMOutput

from ..models.simple_s2s import SimpleS2SEncoderOutput, SimpleS2SForConditionalGeneration

# What the members must agree on to share a tokenizer and decode the same ids.
SHARED_FIELDS = ("vocab_size", "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")


@strict
class SimpleS2SEnsembleConfig(PreTrainedConfig):
    """What generate() needs to know of an ensemble: the shared token ids and each member's number of decoder layers
    (from which it builds the cache)."""

    model_type = "simple_s2s_ensemble"

    member_decoder_layers: list[int] | None = None  # one entry per member
    vocab_size: int = 8000
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 1
    use_cache: bool = True
    is_encoder_decoder: bool = True

    @property
    def num_hidden_layers(self) -> int:
        return sum(self.member_decoder_layers or ())

    @property
    def layer_types(self) -> list[str]:
        """One recurrent ("hybrid") cache layer per decoder layer of every member, member after member."""
        return ["hybrid"] * self.num_hidden_layers


@dataclass
class SimpleS2SEnsembleEncoderOutput(ModelOutput):
    """
    The members' `SimpleS2SEncoderOutput` fields, concatenated along the last dimension (member after member):
    generate() expands the top-level tensors of `encoder_outputs` for beams and samples, and every member shares the
    batch and the source length. [`SimpleS2SEnsemble.member_encoder_outputs`] splits them back.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, src_len, sum of encoder_output_size)`)
        final_hidden_state (`torch.FloatTensor` of shape `(batch_size, sum of encoder_output_size)`)
        attention_keys (`torch.FloatTensor` of shape `(batch_size, src_len, sum of hidden_size)`)
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_hidden_state: torch.FloatTensor | None = None
    attention_keys: torch.FloatTensor | None = None


class SimpleS2SEnsembleEncoder(nn.Module):
    """Every member's encoder over the same source; what generate() calls once before decoding."""

    main_input_name = "input_ids"

    def __init__(self, encoders: Sequence[nn.Module]):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SimpleS2SEnsembleEncoderOutput:
        """
        Args:
            input_ids: `(batch, src_len)` source token ids; `attention_mask` `(batch, src_len)`, 1 on real tokens.
            inputs_embeds: not supported: the members embed the ids each with their own embedding.
        """
        if inputs_embeds is not None:
            raise ValueError("an ensemble takes `input_ids`, not `inputs_embeds`: each member has its own embedding")
        outputs = [encoder(input_ids, attention_mask, return_dict=True) for encoder in self.encoders]
        return SimpleS2SEnsembleEncoderOutput(
            **{
                name: torch.cat([output[name] for output in outputs], dim=-1)
                for name in ("last_hidden_state", "final_hidden_state", "attention_keys")
            }
        )


class SimpleS2SEnsemble(PreTrainedModel, GenerationMixin):
    """SimpleS2S models decoding as one: `generate()` sees the log of the mean of the members' next-token
    probabilities as the logits."""

    config: SimpleS2SEnsembleConfig
    main_input_name = "input_ids"
    # A recurrent state cannot be rolled back, so assisted generation must refuse it (as for every member).
    _is_stateful = True

    def __init__(self, members: Sequence[SimpleS2SForConditionalGeneration]):
        members = list(members)
        check_members(members)
        first = members[0].config
        config = SimpleS2SEnsembleConfig(
            member_decoder_layers=[member.config.decoder_layers for member in members],
            **{name: getattr(first, name) for name in SHARED_FIELDS},
        )
        super().__init__(config)
        self.members = nn.ModuleList(members)
        self.encoder = SimpleS2SEnsembleEncoder([member.model.encoder for member in members])
        # The first member's decoding settings (beams, lengths) are the ensemble's defaults.
        self.generation_config = GenerationConfig.from_dict(members[0].generation_config.to_dict())
        self.eval()

    @classmethod
    def from_pretrained(cls, names: Sequence[str], **kwargs) -> "SimpleS2SEnsemble":
        """An ensemble of saved folders or Hub names; `kwargs` (`device_map`, `dtype`, `revision`, ...) go to every
        member's `from_pretrained`."""
        if isinstance(names, str) or not names:
            raise ValueError(f"`names` must be a non-empty list of model folders or Hub names, got {names!r}")
        return cls([AutoModelForSeq2SeqLM.from_pretrained(name, **kwargs) for name in names])

    def get_encoder(self, modality: str | None = None) -> SimpleS2SEnsembleEncoder:
        return self.encoder

    def member_encoder_outputs(self, encoder_outputs: SimpleS2SEnsembleEncoderOutput) -> list[SimpleS2SEncoderOutput]:
        """The concatenated encoder outputs split back into one `SimpleS2SEncoderOutput` per member."""
        output_sizes = [member.config.encoder_output_size for member in self.members]
        key_sizes = [member.config.hidden_size for member in self.members]
        splits = zip(
            encoder_outputs.last_hidden_state.split(output_sizes, dim=-1),
            encoder_outputs.final_hidden_state.split(output_sizes, dim=-1),
            encoder_outputs.attention_keys.split(key_sizes, dim=-1),
            strict=True,
        )
        return [SimpleS2SEncoderOutput(*fields) for fields in splits]

    def member_caches(self, cache: Cache) -> list[Cache]:
        """Each member's slice of the ensemble's cache: the same layer objects, so that what a member writes and what
        generate() reorders are one and the same."""
        if isinstance(cache, EncoderDecoderCache):
            cache = cache.self_attention_cache
        if len(cache.layers) != self.config.num_hidden_layers:
            raise ValueError(
                f"`cache` must be built from the ensemble's config (e.g. `DynamicCache(config=ensemble.config)`), "
                f"with {self.config.num_hidden_layers} layers; got {cache!r}"
            )
        bounds = [0, *itertools.accumulate(self.config.member_decoder_layers)]
        return [Cache(layers=cache.layers[start:end]) for start, end in zip(bounds, bounds[1:])]

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        encoder_outputs: SimpleS2SEnsembleEncoderOutput | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        r"""
        Args:
            input_ids, attention_mask: `(batch, src_len)` source ids and mask (or `encoder_outputs` from
                `get_encoder()`).
            decoder_input_ids: `(batch, tgt_len)`; with a `cache` that holds a state, only the tokens not fed yet.
            cache: an `EncoderDecoderCache` or `DynamicCache` built from the ensemble's config (generate() builds
                one), updated in place.
            kwargs: what generate() passes for other models (`decoder_attention_mask`, `output_hidden_states`, ...),
                accepted and unused.

        Returns:
            `Seq2SeqLMOutput` whose `logits` `(batch, tgt_len, vocab)` are the log of the members' mean next-token
            probabilities (float32), and with `output_attentions` the members' mean cross-attention.
        """
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids, attention_mask)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        caches = self.member_caches(cache) if cache is not None else [None] * len(self.members)
        log_probs, attentions = [], []
        for member, member_encoder_outputs, member_cache in zip(
            self.members, self.member_encoder_outputs(encoder_outputs), caches, strict=True
        ):
            output = member(
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                encoder_outputs=member_encoder_outputs,
                cache=member_cache,
                use_cache=use_cache,
                output_attentions=output_attentions,
                logits_to_keep=logits_to_keep,
            )
            log_probs.append(output.logits.float().log_softmax(dim=-1))  # (batch, tgt_len, vocab)
            if output_attentions:
                attentions.append(output.cross_attentions[0])
        logits = torch.stack(log_probs).logsumexp(dim=0) - math.log(len(self.members))
        return Seq2SeqLMOutput(
            logits=logits,
            cache=cache if use_cache else None,
            cross_attentions=(torch.stack(attentions).mean(dim=0),) if output_attentions else None,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
        )


def check_members(members: list[SimpleS2SForConditionalGeneration]) -> None:
    """Refuse an empty ensemble, a member that is not a SimpleS2S model, or one that does not share the first
    member's vocabulary and special token ids (then it cannot share the tokenizer)."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    for index, member in enumerate(members):
        if not isinstance(member, SimpleS2SForConditionalGeneration):
            raise ValueError(
                f"ensemble member {index} must be a SimpleS2SForConditionalGeneration, got {type(member).__name__}"
            )
        for name in SHARED_FIELDS:
            here, first = getattr(member.config, name), getattr(members[0].config, name)
            if here != first:
                raise ValueError(
                    f"ensemble member {index} ({member.config.name_or_path or 'unnamed'}) has {name}={here!r} but "
                    f"member 0 has {first!r}: the members must share the tokenizer"
                )


__all__ = ["SimpleS2SEnsemble", "SimpleS2SEnsembleConfig", "SimpleS2SEnsembleEncoderOutput"]
