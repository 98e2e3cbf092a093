"""Configuration of SimpleS2S, a GRU encoder-decoder with attention (Bahdanau et al. 2015; Luong et al. 2015)."""

from huggingface_hub.dataclasses import strict
from huggingface_hub.errors import StrictDataclassError
from transformers import PreTrainedConfig

ATTENTION_TYPES = ("bahdanau", "luong_dot", "luong_general")
SCHEDULED_SAMPLING_SCHEDULES = ("none", "linear", "exponential", "inverse_sigmoid")
# The classes each Auto class loads a saved folder as, when it is loaded as remote code (`trust_remote_code=True`).
AUTO_MAP = {
    "AutoConfig": "configuration_simple_s2s.SimpleS2SConfig",
    "AutoModel": "modeling_simple_s2s.SimpleS2SModel",
    "AutoModelForSeq2SeqLM": "modeling_simple_s2s.SimpleS2SForConditionalGeneration",
}


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
    # In the model's own loss. Unlike Seq2SeqTrainer's `label_smoothing_factor`, which takes the labels away from the
    # forward, it keeps the coverage loss and scheduled sampling working.
    label_smoothing: float = 0.0
    # Coverage (Tu et al. 2016; See et al. 2017): the sum of past attention weights enters the attention scores.
    coverage: bool = False
    coverage_loss_weight: float = 0.0  # lambda of See et al.'s loss sum_t sum_j min(a_tj, c_tj); needs `coverage`
    # Scheduled sampling (Bengio et al. 2015): in training, each gold decoder input is replaced by a token sampled
    # from the model with probability 1 - ratio(step); the ratio decays over the training steps.
    scheduled_sampling: str = "none"  # one of SCHEDULED_SAMPLING_SCHEDULES
    scheduled_sampling_k: float = 1000.0  # decay scale in training steps (inverse_sigmoid: the paper's k, >= 1)
    # None is allowed as in transformers (then generate() and the data collator need the id from elsewhere);
    # `eos_token_id` may list several end tokens.
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 1
    use_cache: bool = True
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        # Checked here as well as by `@strict`, so that a bad value raises a plain `ValueError` at construction
        # (strict wraps errors from `validate_*` in its own exception class).
        self.validate_simple_s2s()
        super().__post_init__(**kwargs)
        if getattr(self, "auto_map", None) is None:
            # `save_pretrained` writes it (and copies the two model files), so every Auto class loads the folder
            # as remote code where this package is not installed.
            self.auto_map = dict(AUTO_MAP)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "SimpleS2SConfig":
        # A config.json with a wrong type or value is refused as a `ValueError` that names the field and the value.
        source = "config.json"
        if isinstance(config_dict, dict) and config_dict.get("_name_or_path"):
            source = f"{config_dict['_name_or_path']} (config.json)"
        if not isinstance(config_dict, dict):
            raise ValueError(f"{source} must hold a JSON object, got {type(config_dict).__name__}")
        try:
            return super().from_dict(config_dict, **kwargs)
        except (StrictDataclassError, ValueError, TypeError) as error:
            raise ValueError(f"{source} is not a valid {cls.__name__}: {error}") from error

    def validate_simple_s2s(self):
        """Refuse values the model cannot be built with; every message names the field and the value."""
        for name in ("vocab_size", "embedding_size", "hidden_size", "encoder_layers", "decoder_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
        if self.attention_type not in ATTENTION_TYPES:
            raise ValueError(f"`attention_type` must be one of {ATTENTION_TYPES}, got {self.attention_type!r}")
        for name in ("dropout", "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}")
        if not isinstance(self.initializer_range, (int, float)) or not self.initializer_range > 0:
            raise ValueError(f"`initializer_range` must be > 0, got {self.initializer_range!r}")
        if not isinstance(self.coverage, bool):
            raise ValueError(f"`coverage` must be True or False, got {self.coverage!r}")
        weight = self.coverage_loss_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise ValueError(f"`coverage_loss_weight` must be a finite number >= 0, got {weight!r}")
        if weight > 0 and not self.coverage:
            raise ValueError(f"`coverage_loss_weight` is {weight!r} but `coverage` is False; set `coverage=True`")
        if self.scheduled_sampling not in SCHEDULED_SAMPLING_SCHEDULES:
            raise ValueError(
                f"`scheduled_sampling` must be one of {SCHEDULED_SAMPLING_SCHEDULES}, got {self.scheduled_sampling!r}"
            )
        k, least_k = self.scheduled_sampling_k, 1 if self.scheduled_sampling == "inverse_sigmoid" else 0
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not least_k < k < float("inf"):
            raise ValueError(f"`scheduled_sampling_k` must be a finite number > {least_k}, got {k!r}")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            ids = value if name == "eos_token_id" and isinstance(value, list) and value else [value]
            for token_id in ids:
                is_id = isinstance(token_id, int) and not isinstance(token_id, bool)
                if token_id is not None and not (is_id and 0 <= token_id < self.vocab_size):
                    raise ValueError(
                        f"`{name}` must be None or a token id in [0, vocab_size={self.vocab_size})"
                        + (" (or a non-empty list of them)" if name == "eos_token_id" else "")
                        + f", got {value!r}"
                    )

    @property
    def encoder_output_size(self) -> int:
        """Size of each encoder output vector: both directions concatenated when bidirectional."""
        return self.hidden_size * (2 if self.bidirectional_encoder else 1)

    @property
    def layer_types(self) -> list[str]:
        """transformers' cache layer type of each decoder layer: "hybrid" holds a recurrent state (the GRU's) and a
        growing key/value part, in which layer 0 keeps one row per decoded token, so the cache counts tokens like any
        other. `DynamicCache(config=...)` and `StaticCache(config=...)` build their layers from this."""
        return ["hybrid"] * self.decoder_layers


__all__ = ["SimpleS2SConfig"]
