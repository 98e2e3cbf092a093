"""Deployment: the model's encoder and decoding step exported to ONNX (dynamic batch and source length), and a small
`GenerationMixin` model whose forward runs them with onnxruntime, so that transformers' own `generate()` does every
search (as optimum runs its ONNX models). Never imported by the model files.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import DynamicCache, EncoderDecoderCache, GenerationConfig, GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import Seq2SeqLMOutput

from ..models.simple_s2s import SimpleS2SConfig, SimpleS2SEncoderOutput, SimpleS2SForConditionalGeneration
from ..models.simple_s2s.modeling_simple_s2s import (
    check_source_mask,
    check_token_ids,
    coverage_so_far,
    decoder_cache,
    source_padding_mask,
    store_in_cache,
)

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
    """One decoding step: the next token's logits, the updated recurrent state and this step's attention weights."""

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
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`input_ids` `(batch, 1)`; the rest as `ExportedEncoder` returns it; `coverage` `(batch, src_len)` when the
        model has coverage. Returns logits `(batch, vocab)`, the new state `(decoder_layers, batch, hidden)` and the
        attention weights `(batch, src_len)`."""
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
        logits = self.model.output_logits(vectors)[:, -1]  # (batch, vocab)
        return logits, torch.stack(states), weights.squeeze(1)


def step_names(coverage: bool) -> tuple[list[str], list[str]]:
    inputs = ["input_ids", "encoder_hidden_states", "attention_keys", "attention_mask", "decoder_state"]
    outputs = ["logits", "new_decoder_state", "attention_weights"]
    return (inputs + ["coverage"], outputs) if coverage else (inputs, outputs)


@torch.no_grad()
def export_onnx(model: SimpleS2SForConditionalGeneration, folder: str | Path, opset_version: int = 17) -> Path:
    """Write `encoder.onnx`, `decoder_step.onnx`, the config and the generation config into `folder` (created if
    needed), for [`OnnxSimpleS2S.from_pretrained`]; returns the folder."""
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
    # torch.export cannot keep the encoder's source length dynamic (its GRU decomposition unrolls over time), so the
    # graphs are traced with the TorchScript exporter, which maps the GRUs to ONNX's GRU.
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
        "logits": {0: "batch"},
        "new_decoder_state": {1: "batch"},
        "attention_weights": batch_src,
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
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    return folder


@dataclass
class OnnxSimpleS2SEncoderOutput(SimpleS2SEncoderOutput):
    """
    Args:
        initial_decoder_state (`torch.FloatTensor` of shape `(batch_size, decoder_layers, hidden_size)`):
            The decoder's state before the first token, bridged from the encoder's final state in the encoder graph.
            Batch-first like every field, so that `generate()` expands it for beams.
    """

    initial_decoder_state: torch.FloatTensor | None = None


class OnnxSimpleS2SEncoder(nn.Module):
    """The encoder graph in onnxruntime: `input_ids` and `attention_mask` in, an `OnnxSimpleS2SEncoderOutput` out."""

    main_input_name = "input_ids"

    def __init__(self, session, config: SimpleS2SConfig):
        super().__init__()
        self.session, self.config = session, config

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> OnnxSimpleS2SEncoderOutput:
        """`input_ids`, `attention_mask`: `(batch, src_len)`, padded on either side. Checked here as the model checks
        them: onnxruntime aborts the process on an empty axis and reads an id outside the vocabulary as another."""
        check_token_ids(input_ids, self.config.vocab_size, "input_ids")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        check_source_mask(attention_mask, input_ids.shape)
        if output_hidden_states:
            raise ValueError("The encoder graph returns its top layer only: `output_hidden_states` is not available")
        feeds = {"input_ids": input_ids.long().numpy(), "attention_mask": attention_mask.long().numpy()}
        hidden, keys, state = (torch.from_numpy(output) for output in self.session.run(None, feeds))
        return OnnxSimpleS2SEncoderOutput(
            last_hidden_state=hidden, attention_keys=keys, initial_decoder_state=state.transpose(0, 1)
        )


class OnnxSimpleS2S(PreTrainedModel, GenerationMixin):
    """The graphs of `export_onnx` in onnxruntime, under transformers' `generate()`: greedy, beam search, sampling and
    every other option decode as `SimpleS2SForConditionalGeneration.generate()` does.

    Example:

    ```python
    >>> export_onnx(model, "onnx/")
    >>> onnx_model = OnnxSimpleS2S.from_pretrained("onnx/")
    >>> onnx_model.generate(input_ids, attention_mask=attention_mask, num_beams=5, max_new_tokens=40)
    ```
    """

    config_class = SimpleS2SConfig
    main_input_name = "input_ids"
    # The decoding hooks of the PyTorch model, for the same reasons: a recurrent state, no masks to build.
    _is_stateful = SimpleS2SForConditionalGeneration._is_stateful
    create_masks_for_generate = SimpleS2SForConditionalGeneration.create_masks_for_generate

    def __init__(self, config: SimpleS2SConfig, encoder_session, step_session):
        super().__init__(config)
        self.encoder = OnnxSimpleS2SEncoder(encoder_session, config)
        self.step_session = step_session

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, session_options=None, providers: list | None = None
    ) -> "OnnxSimpleS2S":
        """Load a folder written by `export_onnx`. `session_options`: an `onnxruntime.SessionOptions` (say, with
        `intra_op_num_threads`); `providers`: onnxruntime's execution providers (default: the CPU)."""
        import onnxruntime  # the `export` extra

        folder = Path(folder)
        providers = providers or ["CPUExecutionProvider"]
        sessions = [
            onnxruntime.InferenceSession(str(folder / name), session_options, providers=providers)
            for name in (ENCODER_FILE, DECODER_STEP_FILE)
        ]
        model = cls(SimpleS2SConfig.from_pretrained(folder), *sessions)
        if (folder / "generation_config.json").exists():
            model.generation_config = GenerationConfig.from_pretrained(folder)
        return model

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # where the sessions take and return their tensors

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def get_encoder(self, modality: str | None = None) -> OnnxSimpleS2SEncoder:
        return self.encoder

    def forward(
        self,
        decoder_input_ids: torch.LongTensor,
        encoder_outputs: OnnxSimpleS2SEncoderOutput,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        """
        Args:
            decoder_input_ids: `(batch, tgt_len)`, the tokens not fed yet; fed one step at a time.
            encoder_outputs: what `get_encoder()` returned (`generate()` expands it for beams).
            attention_mask: `(batch, src_len)` source mask, or None for no padding.
            cache: the cache `generate()` builds from the config, read and updated in place as the model does it (so
                beam search reorders it); a new one when None.
            use_cache: return the cache (default: `config.use_cache`); without, `generate()` feeds every token again.

        Returns:
            the logits of the last token `(batch, 1, vocab)` and, with `use_cache`, the cache.
        """
        if cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        state_cache = decoder_cache(cache, self.config)
        hidden = encoder_outputs.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long)
        feeds = {
            "encoder_hidden_states": hidden.numpy(),
            "attention_keys": encoder_outputs.attention_keys.numpy(),
            "attention_mask": attention_mask.long().numpy(),
        }
        for t in range(decoder_input_ids.shape[1]):
            if state_cache.has_previous_state(0, 0):
                state = torch.stack([layer.recurrent_states[0] for layer in state_cache.layers])
                coverage = coverage_so_far(state_cache)[:, 0] if self.config.coverage else None
            else:  # inputs are checked where decoding starts, as in the model
                check_token_ids(decoder_input_ids, self.config.vocab_size, "decoder_input_ids")
                state = encoder_outputs.initial_decoder_state.transpose(0, 1)
                coverage = torch.zeros(hidden.shape[:2]) if self.config.coverage else None
            feeds["input_ids"] = decoder_input_ids[:, t : t + 1].long().numpy()
            feeds["decoder_state"] = state.contiguous().numpy()  # (decoder_layers, batch, hidden)
            if coverage is not None:
                feeds["coverage"] = coverage.numpy()  # (batch, src_len)
            logits, new_state, weights = map(torch.from_numpy, self.step_session.run(None, feeds))
            store_in_cache(state_cache, new_state.unbind(0), weights[:, None, None])  # (batch, 1, 1, src_len)
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        return Seq2SeqLMOutput(logits=logits.unsqueeze(1), cache=cache if use_cache else None)


__all__ = ["DecoderStep", "ExportedEncoder", "OnnxSimpleS2S", "OnnxSimpleS2SEncoder", "export_onnx"]
