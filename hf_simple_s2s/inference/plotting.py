"""Attention heatmaps (source tokens x target tokens) as PNG files, for any encoder-decoder's cross-attentions."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, safe in threads and on servers

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402


def plot_attention(
    attention: torch.Tensor | np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | Path,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = 100,
    alignment: Sequence[tuple[int, int]] | None = None,
) -> Path:
    """Save one heatmap: a row per target token, a column per source token; returns the PNG's path.

    Args:
        attention: `(tgt_len, src_len)` weights, e.g. one head of one layer of `cross_attentions`
            (see `cross_attention_matrix`). Extra leading dimensions of size 1 are squeezed away.
        source_tokens, target_tokens: the labels of the columns and rows; their counts must match the shape.
        figsize: in inches; the PNG is `figsize * dpi` pixels. By default it grows with the token counts.
        alignment: `(target_position, source_position)` pairs (e.g. `alignment.argmax_alignment(attention)`),
            drawn as red squares over the heatmap.
    """
    weights = (
        attention.detach().float().cpu().numpy() if isinstance(attention, torch.Tensor) else np.asarray(attention)
    )
    while weights.ndim > 2 and weights.shape[0] == 1:
        weights = weights[0]
    if weights.ndim != 2:
        raise ValueError(f"`attention` must have shape (tgt_len, src_len), got {attention.shape}")
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(
            f"`attention` has shape {weights.shape} but there are {len(target_tokens)} target and "
            f"{len(source_tokens)} source tokens"
        )
    if figsize is None:
        figsize = (2.0 + 0.45 * len(source_tokens), 1.5 + 0.4 * len(target_tokens))

    figure, axes = plt.subplots(figsize=figsize, dpi=dpi)
    try:
        image = axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-9), aspect="auto")
        if alignment:
            targets, sources = zip(*alignment)
            axes.scatter(sources, targets, marker="s", s=120, facecolors="none", edgecolors="red", label="argmax")
        axes.set_xticks(range(len(source_tokens)), labels=list(source_tokens), rotation=90)
        axes.set_yticks(range(len(target_tokens)), labels=list(target_tokens))
        axes.set_xlabel("source")
        axes.set_ylabel("target")
        if title:
            axes.set_title(title)
        figure.colorbar(image, ax=axes, fraction=0.04)
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=dpi)  # no bbox_inches="tight": the size stays figsize * dpi
    finally:
        plt.close(figure)
    return path


def cross_attention_matrix(cross_attentions: tuple, index: int = 0, layer: int = -1, head: int = 0) -> torch.Tensor:
    """One sequence's `(tgt_len, src_len)` weights out of a model output's `cross_attentions`.

    Accepts both layouts: a forward pass's tuple over layers of `(batch, heads, tgt_len, src_len)`, and greedy
    `generate(..., output_attentions=True, return_dict_in_generate=True)`'s tuple over steps of tuples over layers
    of `(batch, heads, 1, src_len)`. (With beam search, rerun the chosen output through a forward pass instead:
    the beams are reordered between steps.)
    """
    if isinstance(cross_attentions[0], (tuple, list)):  # generate(): steps, then layers
        return torch.cat([step[layer][index, head] for step in cross_attentions], dim=0)  # (tgt_len, src_len)
    return cross_attentions[layer][index, head]  # (tgt_len, src_len)


__all__ = ["cross_attention_matrix", "plot_attention"]
