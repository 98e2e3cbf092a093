"""A `pipeline()` task that translates with SimpleS2S, in place of the `translation` task transformers 5 removed.

`import hf_simple_s2s` registers it, so `pipeline(TASK, model=folder_or_hub_name)` works. A folder saved after
`share_pipeline` also carries this file: `pipeline(model=folder_or_hub_name, trust_remote_code=True)` then works without
the package. Inputs and outputs are those of the removed `TranslationPipeline`: a string gives
`[{"translation_text": ...}]`, a list of strings gives one such dict per string; generation kwargs (`num_beams`,
`max_new_tokens`, ...) go to `generate()`. This file imports only torch and transformers: it travels with the model.
"""

import os
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, GenerationConfig, Pipeline, PreTrainedModel
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY

TASK = "simple-s2s-translation"
# The task of the pipeline that travels with a model (the config's `custom_pipelines`) and the model card's
# `pipeline_tag`: the Hub's name for it. transformers 5 removed its own `translation` pipeline; a model's custom
# pipeline of that name comes first, so `pipeline("translation", model=..., trust_remote_code=True)` works too.
HUB_TASK = "translation"


def valid_text(text: str) -> str:
    """`text` with lone surrogates (a caller's string, undecodable bytes in `sys.argv`) replaced by U+FFFD: the
    tokenizer cannot encode them."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


class SimpleS2STranslationPipeline(Pipeline):
    """Tokenize the source text, `generate()` the translation, decode it."""

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _pipeline_calls_generate = True
    # Without it generate() stops at its global `max_length=20`, too short for a sentence.
    _default_generation_config = GenerationConfig(max_new_tokens=256)

    def _sanitize_parameters(self, clean_up_tokenization_spaces: bool | None = None, **generate_kwargs):
        postprocess_params = {}
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return {}, generate_kwargs, postprocess_params

    def __call__(self, inputs: str | list[str], **kwargs) -> list[dict[str, str]] | list[list[dict[str, str]]]:
        """Translate `inputs`. A list gives one dict per string (a list of dicts with `num_return_sequences` > 1)."""
        if isinstance(inputs, str):
            return super().__call__(inputs, **kwargs)
        if not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
            raise ValueError(f"`inputs` must be a string or a list of strings, got {inputs!r}")
        if not inputs:
            return []
        results = super().__call__(inputs, **kwargs)
        if all(len(result) == 1 for result in results):
            return [result[0] for result in results]
        return results

    def preprocess(self, text: str) -> dict[str, torch.Tensor]:
        # Cut at the source length the tokenizer was saved with (a training run saves its `max_source_length`); one
        # saved without (`model_max_length` ~1e30) would only warn that it cannot.
        truncation = self.tokenizer.model_max_length < 10**9
        return self.tokenizer(valid_text(text), truncation=truncation, return_tensors="pt")

    def _forward(self, model_inputs: dict[str, torch.Tensor], **generate_kwargs) -> dict[str, torch.Tensor]:
        batch_size = model_inputs["input_ids"].shape[0]
        output_ids = self.model.generate(**model_inputs, **self._prepare_generate_kwargs(generate_kwargs))
        # (batch * num_return_sequences, out_len) -> (batch, num_return_sequences, out_len): the pipeline's batching
        # splits outputs along the first dimension, one entry per input string.
        return {"output_ids": output_ids.reshape(batch_size, -1, output_ids.shape[-1])}

    def postprocess(self, model_outputs: dict[str, torch.Tensor], clean_up_tokenization_spaces: bool = False):
        return [
            {
                "translation_text": self.tokenizer.decode(
                    output_ids, skip_special_tokens=True, clean_up_tokenization_spaces=clean_up_tokenization_spaces
                )
            }
            for output_ids in model_outputs["output_ids"][0]
        ]


def register_pipeline() -> None:
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=SimpleS2STranslationPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
    )


def share_pipeline(model: PreTrainedModel, folder: str | os.PathLike) -> None:
    """Make this pipeline travel with `model` into `folder` (a Hub repository once pushed), as transformers'
    `Pipeline.save_pretrained` shares a custom pipeline: the task in the config's `custom_pipelines` and this file
    beside the model, so that `pipeline(model=folder, trust_remote_code=True)` works without this package. Call it
    before `model.save_pretrained(folder)`."""
    model.config.custom_pipelines = {
        HUB_TASK: {
            "impl": f"{Path(__file__).stem}.{SimpleS2STranslationPipeline.__name__}",
            "pt": (AutoModelForSeq2SeqLM.__name__,),
            "type": "text",
        }
    }
    os.makedirs(folder, exist_ok=True)
    custom_object_save(SimpleS2STranslationPipeline, folder)


__all__ = ["HUB_TASK", "TASK", "SimpleS2STranslationPipeline", "register_pipeline", "share_pipeline", "valid_text"]
