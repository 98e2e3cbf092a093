"""Deployment export: the encoder and one decoder step as ONNX graphs (dynamic batch and source length), and a
small decoder (greedy or beam search) that runs them with onnxruntime and returns what `generate()` returns.

The graphs trace the model's own encoder (branch-free, any padding side) and its decoding step. Never imported by
the model files.
"""

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.simple_s2s.modeling_simple_s2s import SimpleS2SForConditionalGeneration, source_padding_mask

ENCODER_FILE = "encoder.onnx"
DECODER_STEP_FILE = "decoder_step.onnx"


class ExportedEncoder(nn.Module):
    """The model's encoder, then the decoder's start: what the first decoder step needs, as plain tensors."""

    def __init__(self, model: SimpleS2SForConditionalGeneration):
        super().__init__()
        self.encoder, self.decoder = model.get_encoder(), model.get_decoder()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """
        Args:
            input_ids, attention_mask: `(batch, src_len)`, padded on either side.

        Returns:
            encoder outputs `(batch, src_len, enc_size)` (0 on pads), attention keys `(batch, src_len, hidden)`
            and the decoder's initial state `(decoder_layers, batch, hidden)`.
        """
        outputs = self.encoder(input_ids, attention_mask, return_dict=True)
        states = self.decoder.initial_state(outputs.final_hidden_state)
        return outputs.last_hidden_state, outputs.attention_keys, torch.stack(states)


class DecoderStep(nn.Module):
    """One decoding step: the next token's log-probabilities and the updated recurrent state (and coverage)."""

    def __init__(self, model: SimpleS2SForConditionalGeneration):
        super().__init__()
        self.model, self.decoder = model, model.get_decoder()
        self.coverage = model.config.coverage

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_keys: torch.Tensor,
        attention_mask: torch.Tensor,
        decoder_state: torch.Tensor,
        coverage: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """`input_ids` `(batch, 1)`; the rest as `ExportedEncoder` returns it; `coverage` `(batch, src_len)` when the
        model has coverage. Returns log-probabilities `(batch, vocab)`, the new state (and coverage)."""
        embedded = self.decoder.dropout(self.decoder.embed_tokens(input_ids))  # (batch, 1, emb)
        coverage = coverage.unsqueeze(1) if self.coverage else None  # (batch, 1, src_len)
        states, weights = self.decoder.step(
            embedded[:, 0],
            tuple(decoder_state.unbind(0)),
            attention_keys,
            encoder_hidden_states,
            source_padding_mask(attention_mask),
            coverage,
        )
        vectors = self.decoder.output_vectors(
            states[-1].unsqueeze(1), weights.unsqueeze(1), encoder_hidden_states, embedded
        )
        log_probs = self.model.output_logits(vectors)[:, -1].log_softmax(dim=-1)  # (batch, vocab)
        new_state = torch.stack(states)  # (layers, batch, hidden)
        return (log_probs, new_state) + (((coverage + weights).squeeze(1),) if self.coverage else ())


def step_names(coverage: bool) -> tuple[list[str], list[str]]:
    inputs = ["input_ids", "encoder_hidden_states", "attention_keys", "attention_mask", "decoder_state"]
    outputs = ["log_probs", "new_decoder_state"]
    return (inputs + ["coverage"], outputs + ["new_coverage"]) if coverage else (inputs, outputs)


@torch.no_grad()
def export_onnx(model: SimpleS2SForConditionalGeneration, folder: str | Path, opset_version: int = 17) -> Path:
    """Write `encoder.onnx` and `decoder_step.onnx` into `folder` (created if needed); returns the folder."""
    was_training = model.training
    model.eval()  # no dropout in the graphs
    try:
        with warnings.catch_warnings():
            # nn.GRU's argument checks compare shapes while tracing, and the exporter warns about GRUs traced with a
            # batch of 2; every GRU here starts from a state passed in or from zeros sized by the input, so the
            # graphs serve any batch size and source length (tests/export/test_onnx.py runs them at other sizes).
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
            return _export_onnx(model, Path(folder), opset_version)
    finally:
        model.train(was_training)


def _export_onnx(model: SimpleS2SForConditionalGeneration, folder: Path, opset_version: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    input_ids = torch.tensor([[5, 6, 7, config.eos_token_id], [8, config.eos_token_id, 0, 0]])
    attention_mask = (torch.arange(4) < torch.tensor([[4], [2]])).long()
    batch_src = {0: "batch", 1: "src_len"}
    torch.onnx.export(
        ExportedEncoder(model),
        (input_ids, attention_mask),
        folder / ENCODER_FILE,
        input_names=["input_ids", "attention_mask"],
        output_names=["encoder_hidden_states", "attention_keys", "decoder_state"],
        dynamic_axes={
            "input_ids": batch_src,
            "attention_mask": batch_src,
            "encoder_hidden_states": batch_src,
            "attention_keys": batch_src,
            "decoder_state": {1: "batch"},
        },
        opset_version=opset_version,
        dynamo=False,
    )
    hidden, keys, state = ExportedEncoder(model)(input_ids, attention_mask)
    inputs, outputs = step_names(config.coverage)
    step_args = (torch.full((2, 1), config.decoder_start_token_id), hidden, keys, attention_mask, state)
    if config.coverage:
        step_args += (torch.zeros(attention_mask.shape),)
    axes = {
        "input_ids": {0: "batch"},
        "encoder_hidden_states": batch_src,
        "attention_keys": batch_src,
        "attention_mask": batch_src,
        "decoder_state": {1: "batch"},
        "coverage": batch_src,
        "log_probs": {0: "batch"},
        "new_decoder_state": {1: "batch"},
        "new_coverage": batch_src,
    }
    torch.onnx.export(
        DecoderStep(model),
        step_args,
        folder / DECODER_STEP_FILE,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes={name: axes[name] for name in inputs + outputs},
        opset_version=opset_version,
        dynamo=False,
    )
    config.to_json_file(folder / "config.json")  # token ids and `coverage`, for OnnxTranslator
    return folder


class OnnxTranslator:
    """Greedy or beam search with onnxruntime over the two graphs of `export_onnx`: the tokens of `generate()`.

    Example:

    ```python
    >>> folder = export_onnx(model, "onnx/")
    >>> translator = OnnxTranslator(folder)
    >>> sequences = translator.generate(input_ids, attention_mask, max_new_tokens=40, num_beams=5)  # numpy
    ```
    """

    def __init__(self, folder: str | Path, intra_op_num_threads: int | None = None):
        import onnxruntime  # the `export` extra

        from ..models.simple_s2s import SimpleS2SConfig

        folder = Path(folder)
        self.config = SimpleS2SConfig.from_pretrained(folder)
        options = onnxruntime.SessionOptions()
        if intra_op_num_threads is not None:
            options.intra_op_num_threads = intra_op_num_threads
        providers = ["CPUExecutionProvider"]
        self.encoder = onnxruntime.InferenceSession(str(folder / ENCODER_FILE), options, providers=providers)
        self.decoder_step = onnxruntime.InferenceSession(str(folder / DECODER_STEP_FILE), options, providers=providers)

    def generate(
        self, input_ids, attention_mask=None, max_new_tokens: int = 20, num_beams: int = 1, length_penalty: float = 1.0
    ) -> np.ndarray:
        """`input_ids`, `attention_mask`: `(batch, src_len)` arrays or tensors, padded on either side. Returns
        `(batch, 1 + steps)` as `generate()` does: the start token, the tokens, then filling after each row's eos."""
        if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
            raise ValueError(f"`num_beams` must be an integer >= 1, got {num_beams!r}")
        input_ids = np.asarray(input_ids, dtype=np.int64)
        attention_mask = np.ones_like(input_ids) if attention_mask is None else np.asarray(attention_mask, np.int64)
        if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`input_ids` {input_ids.shape} and `attention_mask` {attention_mask.shape} must be the same (batch, src_len) shape"
            )

        def encode(ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
            return self.encoder.run(None, {"input_ids": ids, "attention_mask": mask})

        def decode_step(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            return self.decoder_step.run(None, feeds)

        if num_beams == 1:
            return greedy_decode(encode, decode_step, self.config, input_ids, attention_mask, max_new_tokens)
        return beam_decode(
            encode, decode_step, self.config, input_ids, attention_mask, max_new_tokens, num_beams, length_penalty
        )


def greedy_decode(
    encode, decode_step, config, input_ids: np.ndarray, attention_mask: np.ndarray, max_new_tokens: int
) -> np.ndarray:
    """Greedy search over an encoder and a decoder step given as functions on numpy arrays (onnxruntime sessions,
    or `ExportedEncoder` / `DecoderStep` wrapped): `encode(input_ids, attention_mask)` returns the three outputs of
    `ExportedEncoder`, `decode_step(feeds)` those of `DecoderStep` for the feeds named as in `step_names`."""
    hidden, keys, state = encode(input_ids, attention_mask)
    feeds = {"encoder_hidden_states": hidden, "attention_keys": keys, "attention_mask": attention_mask}
    coverage = np.zeros(input_ids.shape, dtype=np.float32) if config.coverage else None
    sequences = np.full((len(input_ids), 1), config.decoder_start_token_id, dtype=np.int64)
    finished = np.zeros(len(input_ids), dtype=bool)
    for _ in range(max_new_tokens):
        step_feeds = {**feeds, "input_ids": sequences[:, -1:].copy(), "decoder_state": state}  # contiguous
        if coverage is not None:
            step_feeds["coverage"] = coverage
        log_probs, state, *rest = decode_step(step_feeds)
        coverage = rest[0] if rest else None
        next_tokens = np.where(finished, config.pad_token_id, log_probs.argmax(axis=-1))
        sequences = np.concatenate([sequences, next_tokens[:, None]], axis=1)
        finished |= next_tokens == config.eos_token_id
        if finished.all():
            break
    return sequences


def beam_decode(
    encode,
    decode_step,
    config,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float = 1.0,
) -> np.ndarray:
    """Beam search as transformers' `generate(num_beams=...)` does it (defaults: `early_stopping=False`, one returned
    sequence per source), over the same two functions as `greedy_decode`. Scores are float32 like transformers'."""
    batch_size, beams, eos = len(input_ids), num_beams, config.eos_token_id
    hidden, keys, state = encode(input_ids, attention_mask)
    attention_mask = np.repeat(attention_mask, beams, axis=0)  # each source once per beam: (batch * beams, src_len)
    feeds = {
        "encoder_hidden_states": np.repeat(hidden, beams, axis=0),
        "attention_keys": np.repeat(keys, beams, axis=0),
        "attention_mask": attention_mask,
    }
    state = np.repeat(state, beams, axis=1)  # (layers, batch * beams, hidden)
    coverage = np.zeros(attention_mask.shape, dtype=np.float32) if config.coverage else None
    max_length = 1 + max_new_tokens
    keep = 2 * beams  # candidates kept per source: enough to continue `beams` beams when `beams` of them end in eos
    in_top_beams = np.arange(keep) < beams  # only the best `beams` candidates may become finished hypotheses

    def gather(values: np.ndarray, index: np.ndarray) -> np.ndarray:  # per source, along the beam axis
        return np.take_along_axis(values, index.reshape(index.shape + (1,) * (values.ndim - 2)), axis=1)

    def top(scores: np.ndarray, k: int) -> np.ndarray:  # indices of the k best per row, best first
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # unordered, without sorting the whole row
        return np.take_along_axis(best, np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1), axis=1)

    # transformers fills unused positions with `pad_token_id or eos_token_id`: eos when the pad id is 0.
    running = np.full((batch_size, beams, max_length), config.pad_token_id or eos, dtype=np.int64)
    running[:, :, 0] = config.decoder_start_token_id
    running_scores = np.zeros((batch_size, beams), dtype=np.float32)
    running_scores[:, 1:] = -1e9  # the beams start identical: let only the first one expand
    finished = running.copy()  # the best finished hypotheses so far, their scores and lengths
    finished_scores = np.full((batch_size, beams), -1e9, dtype=np.float32)
    finished_lengths = np.zeros((batch_size, beams), dtype=np.int64)
    is_finished = np.zeros((batch_size, beams), dtype=bool)
    can_improve = np.ones((batch_size, 1), dtype=bool)
    cur_len = 1
    while True:
        step_feeds = {**feeds, "input_ids": running[:, :, cur_len - 1].reshape(-1, 1), "decoder_state": state}
        if coverage is not None:
            step_feeds["coverage"] = coverage
        log_probs, state, *rest = decode_step(step_feeds)
        vocab_size = log_probs.shape[-1]
        scores = (log_probs.reshape(batch_size, beams, vocab_size) + running_scores[:, :, None]).reshape(
            batch_size, -1
        )
        candidates = top(scores, keep)  # (batch, keep) over beams * vocab
        candidate_scores, parents, tokens = (
            gather(scores, candidates),
            candidates // vocab_size,
            candidates % vocab_size,
        )
        candidate_sequences = gather(running, parents).copy()
        candidate_sequences[:, :, cur_len] = tokens
        ends = (tokens == eos) | (cur_len + 1 >= max_length)

        # The best `beams` candidates that go on.
        go_on_scores = candidate_scores + ends.astype(np.float32) * -1e9
        chosen = top(go_on_scores, beams)
        running, running_scores = gather(candidate_sequences, chosen), gather(go_on_scores, chosen)
        beam_index = (gather(parents, chosen) + np.arange(batch_size)[:, None] * beams).reshape(-1)

        # Candidates that end here join the finished ones, scored with the length penalty; keep the best `beams`.
        just_finished = ends & in_top_beams[None, :]
        ended_scores = candidate_scores / ((cur_len + 1 - 1) ** length_penalty)
        ended_scores += (~can_improve).astype(np.float32) * -1e9
        ended_scores += (~just_finished).astype(np.float32) * -1e9
        merged_scores = np.concatenate([finished_scores, ended_scores], axis=1)
        best = top(merged_scores, beams)
        finished = gather(np.concatenate([finished, candidate_sequences], axis=1), best)
        finished_scores = gather(merged_scores, best)
        finished_lengths = gather(np.concatenate([finished_lengths, np.full(ends.shape, cur_len)], axis=1), best)
        is_finished = gather(np.concatenate([is_finished, just_finished], axis=1), best)

        state = state[:, beam_index]
        coverage = rest[0][beam_index] if rest else None
        cur_len += 1
        best_possible = running_scores[:, :1] / ((cur_len - 1) ** length_penalty)
        worst_finished = np.where(is_finished, finished_scores.min(axis=1, keepdims=True), np.float32(-1e9))
        can_improve &= (best_possible > worst_finished).any(axis=1, keepdims=True)
        if not can_improve.any() or ends.all():
            break
    return finished[:, 0, : 1 + finished_lengths[:, 0].max()]


__all__ = ["DecoderStep", "ExportedEncoder", "OnnxTranslator", "beam_decode", "export_onnx", "greedy_decode"]
