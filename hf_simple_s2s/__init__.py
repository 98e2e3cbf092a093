"""hf_simple_s2s: a GRU encoder + attention decoder seq2seq model that is a native transformers model.

Importing the package registers the model with `AutoConfig`, `AutoModel` and `AutoModelForSeq2SeqLM`, and the
`pipeline()` task `PIPELINE_TASK` ("simple-s2s-translation").
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .inference.ensemble import SimpleS2SEnsemble
from .inference.pipeline import TASK as PIPELINE_TASK
from .inference.pipeline import SimpleS2STranslationPipeline, register_pipeline
from .models.simple_s2s import (
    SimpleS2SConfig,
    SimpleS2SEncoderOutput,
    SimpleS2SForConditionalGeneration,
    SimpleS2SModel,
    SimpleS2SPreTrainedModel,
)

__version__ = "0.1.0"

AutoConfig.register(SimpleS2SConfig.model_type, SimpleS2SConfig, exist_ok=True)
AutoModel.register(SimpleS2SConfig, SimpleS2SModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(SimpleS2SConfig, SimpleS2SForConditionalGeneration, exist_ok=True)

# `save_pretrained` copies the two model files next to the weights and writes the config's `auto_map`, so the
# folder also loads with `trust_remote_code=True` where this package is not installed.
SimpleS2SConfig.register_for_auto_class()
SimpleS2SModel.register_for_auto_class("AutoModel")
SimpleS2SForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")

# `pipeline(PIPELINE_TASK, model=...)` translates with this model (transformers 5 removed the `translation` task).
register_pipeline()

__all__ = [
    "PIPELINE_TASK",
    "SimpleS2SConfig",
    "SimpleS2SEncoderOutput",
    "SimpleS2SEnsemble",
    "SimpleS2SForConditionalGeneration",
    "SimpleS2SModel",
    "SimpleS2SPreTrainedModel",
    "SimpleS2STranslationPipeline",
]
