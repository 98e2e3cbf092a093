"""Configuration of SimpleS2S, a GRU encoder-decoder with attention (Bahdanau et al. 2015; Luong et al. 2015)."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

ATTENTION_TYPES = ("bahdanau", "luong_dot", "luong_general")


@strict
class SimpleS2SConfig(PreTrainedConfig):
    r"""
    Configuration of a [`SimpleS2SModel`] / [`SimpleS2SForConditionalGeneration`].

    The defaults are the size of the classic Multi30k baseline (emb 256, bi-GRU 512, decoder 512).

    Example:

    ```python
    >>> from hf_simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
    >>> config = SimpleS2SConfig(vocab_size=8000, attention_type="luong_general")
    >>> model = SimpleS2SForConditionalGeneration(config)
    ```
    """

    model_type = "simple_s2s"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {"num_hidden_layers": "decoder_layers", "d_model": "hidden_size"}

    vocab_size: int = 8000  # one joint vocabulary for source and target
    embedding_size: int = 256
    hidden_size: int = 512  # per direction in the encoder; the decoder state has this size too
    encoder_layers: int = 1
    decoder_layers: int = 1
    bidirectional_encoder: bool = True
    attention_type: str = "bahdanau"  # one of ATTENTION_TYPES
    dropout: float = 0.1  # on embeddings, between stacked GRU layers and before the output layer
    tie_word_embeddings: bool = True  # output layer reuses the decoder's input embedding
    share_embeddings: bool = False  # encoder and decoder share one embedding (joint vocabulary)
    initializer_range: float = 0.1  # weights start uniform in [-r, r], as in the classic RNN NMT recipes
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2
    decoder_start_token_id: int = 1
    use_cache: bool = True
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        # Checked here as well as by `@strict`, so that a bad value raises a plain `ValueError` at construction
        # (strict wraps errors from `validate_*` in its own exception class).
        self.validate_simple_s2s()
        super().__post_init__(**kwargs)

    def validate_simple_s2s(self):
        """Refuse values the model cannot be built with; every message names the field and the value."""
        for name in ("vocab_size", "embedding_size", "hidden_size", "encoder_layers", "decoder_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
        if self.attention_type not in ATTENTION_TYPES:
            raise ValueError(f"`attention_type` must be one of {ATTENTION_TYPES}, got {self.attention_type!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"`dropout` must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.initializer_range, (int, float)) or not self.initializer_range > 0:
            raise ValueError(f"`initializer_range` must be > 0, got {self.initializer_range!r}")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.vocab_size:
                raise ValueError(f"`{name}` must be a token id in [0, vocab_size={self.vocab_size}), got {value!r}")

    @property
    def encoder_output_size(self) -> int:
        """Size of each encoder output vector: both directions concatenated when bidirectional."""
        return self.hidden_size * (2 if self.bidirectional_encoder else 1)


__all__ = ["SimpleS2SConfig"]
