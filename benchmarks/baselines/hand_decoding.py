"""The floor for `generate()`: greedy and beam search written by hand over the model's own modules.

No generation machinery (no logits processors, stopping criteria, model outputs or finished-hypothesis bookkeeping,
unless `hand_greedy(..., stop_check=True)` asks for the per-step finished check): EOS is banned so every sequence runs
the full length, and the decoder module is called directly with its cache (transformers' `DynamicCache`).
Given the same EOS ban, `generate()` must pick exactly these tokens; the benchmark and the tests check that.
"""

import torch
from transformers import DynamicCache

from hf_simple_s2s import SimpleS2SForConditionalGeneration


class DecoderSteps:
    """The model's decoder module over its cache: the encoder once, then `logits(next_tokens)` per token."""

    def __init__(self, model: SimpleS2SForConditionalGeneration, encoder_outputs, attention_mask: torch.Tensor):
        self.model, self.encoder_outputs, self.attention_mask = model, encoder_outputs, attention_mask
        self.cache = DynamicCache(config=model.config)

    def logits(self, next_tokens: torch.Tensor) -> torch.Tensor:
        """`(batch, 1)` tokens -> `(batch, vocab)` logits of the token after them; the cache moves one step."""
        outputs = self.encoder_outputs
        output_vectors, _, _ = self.model.model.decoder(
            next_tokens,
            None,
            outputs.last_hidden_state,
            outputs.attention_keys,
            outputs.final_hidden_state,
            attention_mask=self.attention_mask,
            cache=self.cache,
        )
        return self.model.lm_head(output_vectors[:, -1])  # eval mode: no dropout

    def reorder(self, beam_idx: torch.Tensor) -> None:
        self.cache.reorder_cache(beam_idx)


@torch.no_grad()
def hand_greedy(
    model: SimpleS2SForConditionalGeneration,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    new_tokens: int,
    stop_check: bool = False,
) -> torch.Tensor:
    """Returns `(batch, new_tokens)` greedy tokens, never EOS.

    `stop_check=True` adds what any decoder that stops at EOS must do at every step (and what `generate()` does):
    track the finished rows, pad them, and ask whether any row is left, which reads a value back from the device.
    EOS is still banned, so the tokens are the same; only the cost of the check is added."""
    config = model.config
    encoder_outputs = model.get_encoder()(input_ids, attention_mask=attention_mask, return_dict=True)
    steps = DecoderSteps(model, encoder_outputs, attention_mask)
    next_tokens = input_ids.new_full((input_ids.shape[0], 1), config.decoder_start_token_id)  # (batch, 1)
    unfinished = torch.ones_like(next_tokens, dtype=torch.bool)  # (batch, 1)
    tokens = []
    for _ in range(new_tokens):
        logits = steps.logits(next_tokens)  # (batch, vocab)
        logits[:, config.eos_token_id] = -float("inf")
        next_tokens = logits.argmax(dim=-1, keepdim=True)  # (batch, 1)
        if stop_check:
            next_tokens = next_tokens.masked_fill(~unfinished, config.pad_token_id)
            unfinished &= next_tokens != config.eos_token_id
            if not unfinished.any():
                break
        tokens.append(next_tokens)
    return torch.cat(tokens, dim=1)


@torch.no_grad()
def hand_beam_search(
    model: SimpleS2SForConditionalGeneration,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    new_tokens: int,
    num_beams: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns the best of `num_beams` hypotheses, never EOS, `(batch, new_tokens)`, and its summed log-probability
    `(batch,)`. (Two hypotheses can tie exactly; `generate()` may then pick the other one.)"""
    config = model.config
    batch_size = input_ids.shape[0]
    encoder_outputs = model.get_encoder()(input_ids, attention_mask=attention_mask, return_dict=True)
    for name, value in encoder_outputs.items():  # each source once per beam, as generate() expands them
        encoder_outputs[name] = value.repeat_interleave(num_beams, dim=0)
    steps = DecoderSteps(model, encoder_outputs, attention_mask.repeat_interleave(num_beams, dim=0))

    # Only the first beam of each source is live at the start, so the first step does not pick one token 5 times.
    beam_scores = torch.zeros(batch_size, num_beams, device=input_ids.device)
    beam_scores[:, 1:] = -1e9
    next_tokens = input_ids.new_full((batch_size * num_beams, 1), config.decoder_start_token_id)
    sequences = input_ids.new_zeros(batch_size, num_beams, 0)
    batch_offsets = torch.arange(batch_size, device=input_ids.device).unsqueeze(1) * num_beams  # (batch, 1)
    for _ in range(new_tokens):
        log_probs = torch.log_softmax(steps.logits(next_tokens), dim=-1)  # (batch * beams, vocab)
        log_probs[:, config.eos_token_id] = -float("inf")
        vocab_size = log_probs.shape[-1]
        scores = (log_probs.view(batch_size, num_beams, vocab_size) + beam_scores.unsqueeze(-1)).view(batch_size, -1)
        beam_scores, flat_indices = scores.topk(num_beams, dim=-1)  # (batch, beams)
        source_beams, tokens = flat_indices // vocab_size, flat_indices % vocab_size
        kept_prefixes = sequences.gather(1, source_beams.unsqueeze(-1).expand_as(sequences))
        sequences = torch.cat([kept_prefixes, tokens.unsqueeze(-1)], dim=-1)  # (batch, beams, step + 1)
        steps.reorder((source_beams + batch_offsets).view(-1))
        next_tokens = tokens.view(-1, 1)
    return sequences[:, 0], beam_scores[:, 0]  # topk sorts, so beam 0 is the best
