"""Word alignments from cross-attention: each target token is aligned to the source token it attends to most.

The argmax reading of attention as alignment goes back to Bahdanau et al. 2015 (figure 3). The result is plain
data (index pairs and 0/1 matrices) that an attention heatmap can overlay.
"""

import torch


def argmax_alignment(
    attention: torch.Tensor, source_mask: torch.Tensor | None = None, target_mask: torch.Tensor | None = None
) -> list[tuple[int, int]]:
    """One sentence's alignment as `(target_position, source_position)` pairs, one per kept target position.

    Args:
        attention: `(tgt_len, src_len)` weights (e.g. `cross_attentions[0][i, 0]`); leading size-1 dims are dropped.
        source_mask: `(src_len,)`, 1 on the source positions that may be aligned to (default: all).
        target_mask: `(tgt_len,)`, 1 on the target positions to align (default: all).
    """
    while attention.dim() > 2 and attention.shape[0] == 1:
        attention = attention[0]
    if attention.dim() != 2:
        raise ValueError(f"`attention` must have shape (tgt_len, src_len), got {tuple(attention.shape)}")
    tgt_len, src_len = attention.shape
    for name, mask, size in (("source_mask", source_mask, src_len), ("target_mask", target_mask, tgt_len)):
        if mask is not None and tuple(mask.shape) != (size,):
            raise ValueError(
                f"`{name}` must have shape ({size},) to match `attention` {tuple(attention.shape)}, got {tuple(mask.shape)}"
            )
    scores = attention.detach().float()
    if source_mask is not None:
        if not source_mask.any():
            return []
        scores = scores.masked_fill(~source_mask.bool(), float("-inf"))
    best_source = scores.argmax(dim=-1)  # (tgt_len,)
    rows = range(tgt_len) if target_mask is None else target_mask.nonzero().flatten().tolist()
    return [(t, int(best_source[t])) for t in rows]


def alignment_matrix(pairs: list[tuple[int, int]], tgt_len: int, src_len: int) -> torch.Tensor:
    """The pairs as a `(tgt_len, src_len)` 0/1 matrix, the shape of the attention heatmap it overlays."""
    matrix = torch.zeros((tgt_len, src_len), dtype=torch.long)
    for target_position, source_position in pairs:
        matrix[target_position, source_position] = 1
    return matrix


@torch.no_grad()
def cross_attention_of(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, sequences: torch.Tensor
) -> torch.Tensor:
    """The `(batch, out_len, src_len)` attention with which `model` produced `sequences` (as `generate()` returns
    them, starting with the decoder start token): row t is the attention of the step that emitted token t + 1.

    Rerunning the output by teacher forcing gives the same weights as the decoding steps (the model's cache
    equivalence), also after beam search, where the per-step attentions of `generate()` follow reordered beams.
    """
    outputs = model(
        input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=sequences[:, :-1], output_attentions=True
    )
    return outputs.cross_attentions[-1][:, 0]  # one head: (batch, out_len, src_len)


def word_alignments(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    sequences: torch.Tensor,
    special_token_ids: set[int] | None = None,
) -> list[list[tuple[int, int]]]:
    """Per sentence, `(output_position, source_position)` argmax pairs between real tokens.

    Output position t is `sequences[:, t + 1]` (the token after the start token); output tokens that are pad or in
    `special_token_ids` (default: the model's pad, bos and eos ids) are left out, and so are padded and special
    source positions.
    """
    config = model.config
    special = (
        special_token_ids
        if special_token_ids is not None
        else {config.pad_token_id, config.bos_token_id, config.eos_token_id}
    )
    special_ids = torch.tensor(sorted(special))
    attention = cross_attention_of(model, input_ids, attention_mask, sequences)
    source_mask = ~torch.isin(input_ids, special_ids)
    if attention_mask is not None:
        source_mask &= attention_mask.bool()
    target_mask = ~torch.isin(sequences[:, 1:], special_ids)
    return [argmax_alignment(attention[i], source_mask[i], target_mask[i]) for i in range(len(sequences))]


__all__ = ["alignment_matrix", "argmax_alignment", "cross_attention_of", "word_alignments"]
