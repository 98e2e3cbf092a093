"""SimpleS2S: the configuration and modeling files that `save_pretrained` copies next to the weights."""

from .configuration_simple_s2s import SimpleS2SConfig
from .modeling_simple_s2s import (
    SimpleS2SEncoderOutput,
    SimpleS2SForConditionalGeneration,
    SimpleS2SModel,
    SimpleS2SPreTrainedModel,
)

__all__ = [
    "SimpleS2SConfig",
    "SimpleS2SEncoderOutput",
    "SimpleS2SForConditionalGeneration",
    "SimpleS2SModel",
    "SimpleS2SPreTrainedModel",
]
