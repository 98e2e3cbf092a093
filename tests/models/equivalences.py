"""The model's equivalences that several test files check, each written once as an assertion, and the grid of
setups they are checked on.

`test_modeling_simple_s2s.TestEquivalences` runs them (and the equivalences no other file needs) on every setup on
the CPU; `test_devices.py` runs them on an accelerator; `test_properties.py` on random inputs drawn by hypothesis.
Each check takes a model and tensors on the device of the model, and the tolerance of `torch.testing.assert_close`
where floats are compared (its float32 default unless given).
"""

from dataclasses import dataclass

import torch
from conftest import ATTENTION_TYPES, padded_batch, peaky_model


@dataclass(frozen=True)
class Setup:
    """One point of the grid: the attention type, coverage on or off, and the layers on each side (two with a
    bidirectional encoder, one with a unidirectional encoder)."""

    attention_type: str
    coverage: bool
    layers: int

    def __str__(self) -> str:
        layers = "2layers-bi" if self.layers == 2 else "1layer-uni"
        return f"{self.attention_type}-{'coverage' if self.coverage else 'plain'}-{layers}"

    @property
    def luong_fast_path(self) -> bool:
        """Luong without coverage: teacher forcing runs each decoder layer over the whole target in one call."""
        return self.attention_type != "bahdanau" and not self.coverage

    def model(self, device: torch.device | str = "cpu", **overrides):
        layers = dict(encoder_layers=self.layers, decoder_layers=self.layers, bidirectional_encoder=self.layers == 2)
        config = dict(attention_type=self.attention_type, coverage=self.coverage, **layers)
        return peaky_model(**{**config, **overrides}).to(device)


SETUPS = [
    Setup(attention, coverage, layers)
    for attention in ATTENTION_TYPES
    for coverage in (False, True)
    for layers in (2, 1)
]


def ending_at_different_steps(model, rows, **generate_kwargs) -> dict:
    """`generate_kwargs` with an `eos_token_id` that greedy decoding of `rows` first emits at different steps (or
    never): an untrained model rarely emits its own eos, and with this one generate() finishes some rows and beams
    before others, so that what it does with them is part of every comparison."""
    input_ids, attention_mask = padded_batch(rows)
    free = model.generate(
        input_ids.to(model.device), attention_mask=attention_mask.to(model.device), **generate_kwargs
    )[:, 1:]
    for token in free.unique().tolist():
        first_steps = {row.tolist().index(token) if token in row else None for row in free}
        if token >= 4 and len(first_steps) > 1:  # 0-3 are the special tokens
            return {**generate_kwargs, "eos_token_id": token}
    raise AssertionError(f"every word of {free.tolist()} first comes at the same step in every row")


def recurrent_states(cache) -> list[torch.Tensor]:
    """The decoder's state per layer, from an `EncoderDecoderCache`."""
    return [layer.recurrent_states[0] for layer in cache.self_attention_cache.layers]


def attention_rows(cache) -> torch.Tensor:
    """The attention weights of every token fed so far `(batch, 1, tokens, src_len)` (what coverage sums)."""
    return cache.self_attention_cache.layers[0].keys


def decode_step_by_step(model, input_ids, attention_mask, decoder_input_ids):
    """Feed `decoder_input_ids` one token at a time through the cache; returns (logits, last cache)."""
    encoder_outputs = model.get_encoder()(input_ids, attention_mask=attention_mask)
    cache, step_logits = None, []
    for t in range(decoder_input_ids.shape[1]):
        out = model(
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids[:, t : t + 1],
            cache=cache,
        )
        cache = out.cache
        step_logits.append(out.logits)
    return torch.cat(step_logits, dim=1), cache


def assert_stepwise_cache_equals_teacher_forcing(model, input_ids, attention_mask, decoder_input_ids, **tolerance):
    """Feeding the tokens one by one through the cache gives the teacher-forced logits and leaves the same cache: the
    same state in every layer and the same attention rows (coverage sums them)."""
    full = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    step_logits, cache = decode_step_by_step(model, input_ids, attention_mask, decoder_input_ids)
    torch.testing.assert_close(step_logits, full.logits, **tolerance)
    for stepwise, teacher_forced in zip(recurrent_states(cache), recurrent_states(full.cache), strict=True):
        torch.testing.assert_close(stepwise, teacher_forced, **tolerance)
    torch.testing.assert_close(attention_rows(cache), attention_rows(full.cache), **tolerance)
    return cache


def assert_generate_with_cache_equals_without(model, input_ids, attention_mask, num_beams: int, **generate_kwargs):
    """The same tokens and scores whether each step continues from the cache or reruns the whole prefix."""
    kwargs = dict(
        attention_mask=attention_mask,
        num_beams=num_beams,
        output_scores=True,
        return_dict_in_generate=True,
        **generate_kwargs,
    )
    with_cache = model.generate(input_ids, use_cache=True, **kwargs)
    without = model.generate(input_ids, use_cache=False, **kwargs)
    assert torch.equal(with_cache.sequences, without.sequences)
    torch.testing.assert_close(torch.stack(with_cache.scores), torch.stack(without.scores))
    if num_beams > 1:
        torch.testing.assert_close(with_cache.sequences_scores, without.sequences_scores)


def assert_beam_scores_match_rescoring(model, input_ids, attention_mask, num_beams=4, **generate_kwargs):
    """Beam search's final scores must equal a teacher-forced re-scoring of the returned sequences: they would not
    if a beam continued from another hypothesis' cache (state or coverage) after reordering."""
    out = model.generate(
        input_ids,
        attention_mask=attention_mask,
        num_beams=num_beams,
        num_return_sequences=num_beams,
        length_penalty=0.0,
        output_scores=True,
        return_dict_in_generate=True,
        **generate_kwargs,
    )
    sequences = out.sequences  # (batch * beams, len), starting with the decoder start token
    logits = model(
        input_ids=input_ids.repeat_interleave(num_beams, dim=0),
        attention_mask=attention_mask.repeat_interleave(num_beams, dim=0),
        decoder_input_ids=sequences[:, :-1],
    ).logits
    token_logprobs = logits.log_softmax(-1).gather(-1, sequences[:, 1:, None]).squeeze(-1)
    eos = generate_kwargs.get("eos_token_id", model.config.eos_token_id)
    after_eos = (sequences[:, 1:-1] == eos).cumsum(-1) > 0  # positions after an emitted eos are padding
    token_logprobs[:, 1:][after_eos] = 0.0
    torch.testing.assert_close(token_logprobs.sum(-1), out.sequences_scores, atol=1e-4, rtol=1e-4)


def assert_batched_generate_equals_one_by_one(model, rows, num_beams: int, sides=("right", "left"), **generate_kwargs):
    """Each source of a padded batch (padded on each of `sides`) gets the tokens it gets alone, then only padding:
    transformers pads finished rows with `pad_token_id`, or in beam search with `pad_token_id or eos_token_id`."""
    device = model.device
    pad = generate_kwargs.get("pad_token_id", model.generation_config.pad_token_id)
    finished = pad if num_beams == 1 else pad or generate_kwargs.get("eos_token_id", model.config.eos_token_id)
    alone = [
        model.generate(torch.tensor([row], device=device), num_beams=num_beams, **generate_kwargs)[0] for row in rows
    ]
    for side in sides:
        input_ids, attention_mask = padded_batch(rows, side=side)
        batched = model.generate(
            input_ids.to(device), attention_mask=attention_mask.to(device), num_beams=num_beams, **generate_kwargs
        )
        for i, expected in enumerate(alone):
            width = expected.shape[0]
            assert torch.equal(batched[i, :width], expected), f"row {i}, {side} padding"
            assert (batched[i, width:] == finished).all(), f"row {i} continues after its end ({side} padding)"


def assert_padding_changes_no_logits(model, input_ids, attention_mask, decoder_input_ids, **tolerance):
    """Each row of a padded batch gives the logits that its real tokens give alone, without padding."""
    batched = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    for i in range(input_ids.shape[0]):
        real_tokens = input_ids[i, attention_mask[i].bool()].unsqueeze(0)
        alone = model(input_ids=real_tokens, decoder_input_ids=decoder_input_ids[i : i + 1]).logits
        torch.testing.assert_close(batched[i : i + 1], alone, **tolerance)
