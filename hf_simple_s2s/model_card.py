"""Fill the Hub model card template (`model_cards/simple_s2s_translation.md`) with a training run's data and numbers."""

import platform
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .data import MULTI30K_DIR
from .inference.pipeline import HUB_TASK

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "model_cards" / "simple_s2s_translation.md"
LANGUAGE_NAMES = {"de": "German", "en": "English", "fr": "French", "cs": "Czech"}
ATTENTION_DESCRIPTIONS = {
    "bahdanau": "additive (Bahdanau et al. 2015)",
    "luong_dot": "dot-product (Luong et al. 2015)",
    "luong_general": "general multiplicative (Luong et al. 2015)",
}
MULTI30K_HUB_ID = "bentrevett/multi30k"  # the same task-1 splits (29000 / 1014 / 1000) on the Hub
MULTI30K_TERMS = (
    "Multi30k (Elliott et al. 2016) is provided for non-commercial research and educational purposes only; "
    "its images come from Flickr and their use must abide by the Flickr Terms of Use. "
    "Source: https://github.com/multi30k/dataset."
)
HYPERPARAMETERS = {
    "job": ("embedding_size", "hidden_size", "encoder_layers", "decoder_layers", "attention_type", "dropout"),
    "training": (
        "num_train_epochs",
        "per_device_train_batch_size",
        "learning_rate",
        "lr_scheduler_type",
        "warmup_steps",
        "label_smoothing_factor",
        "max_grad_norm",
        "weight_decay",
        "seed",
    ),
}


def eval_results(metrics: dict[str, Any], dataset_name: str, dataset_type: str) -> list[EvalResult]:
    """The test-set scores of the selected decoding, for the card's `model-index`."""
    scores = metrics["scores"]["test"][metrics["selected_decoding"]]
    common = dict(task_type="translation", dataset_type=dataset_type, dataset_name=dataset_name, dataset_split="test")
    return [
        EvalResult(
            metric_type="bleu", metric_name="BLEU (sacreBLEU, cased)", metric_value=round(scores["bleu"], 2), **common
        ),
        EvalResult(
            metric_type="bleu",
            metric_name="BLEU (lowercased)",
            metric_value=round(scores["bleu_lowercase"], 2),
            metric_config="lowercase",
            **common,
        ),
        EvalResult(metric_type="chrf", metric_name="chrF", metric_value=round(scores["chrf"], 2), **common),
    ]


def build_model_card(
    job_args, training_args, metrics: dict[str, Any], attention_image: str | None = None, repo_id: str | None = None
) -> ModelCard:
    """A `ModelCard` for the run described by the script's arguments and its `metrics.json` content."""
    src, tgt = job_args.source_lang, job_args.target_lang
    is_multi30k = Path(job_args.data_dir).resolve() == MULTI30K_DIR.resolve()
    sizes = metrics["dataset_sizes"]
    model_name = repo_id or Path(training_args.output_dir).name
    if is_multi30k:
        dataset_name, dataset_type = "Multi30k (task 1, test 2016 Flickr)", MULTI30K_HUB_ID
        dataset_description, dataset_terms = f"Multi30k task 1 ({src}→{tgt})", MULTI30K_TERMS
    else:
        dataset_name = dataset_type = Path(job_args.data_dir).name
        dataset_description, dataset_terms = f"a local parallel corpus ({job_args.data_dir})", ""
    card_data = ModelCardData(
        language=[src, tgt],
        license="other",
        license_name="multi30k-non-commercial" if is_multi30k else None,
        license_link="https://github.com/multi30k/dataset" if is_multi30k else None,
        library_name="transformers",
        pipeline_tag=HUB_TASK,  # the Hub's task; the pipeline that runs it travels in the config (`share_pipeline`)
        tags=["translation", "seq2seq", "gru", "attention", "simple_s2s", f"{src}-{tgt}"],
        datasets=[dataset_type],
        metrics=["bleu", "chrf"],
        model_name=model_name,
        eval_results=eval_results(metrics, dataset_name, dataset_type),
    )
    hyperparameters = {name: getattr(job_args, name) for name in HYPERPARAMETERS["job"]}
    hyperparameters.update({name: getattr(training_args, name) for name in HYPERPARAMETERS["training"]})
    hyperparameters = {name: getattr(value, "value", value) for name, value in hyperparameters.items()}  # enums
    hyperparameters["num_beams (selected)"] = metrics["generation"].get("num_beams", 1)
    results = [
        {"split": split, "decoding": decoding, **scores}
        for split, by_decoding in metrics["scores"].items()
        for decoding, scores in by_decoding.items()
    ]
    train_runtime = metrics.get("train", {}).get("train_runtime")
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        model_name=model_name,
        repo_id=repo_id or training_args.output_dir,
        source_lang=src,
        target_lang=tgt,
        source_language_name=LANGUAGE_NAMES.get(src, src),
        target_language_name=LANGUAGE_NAMES.get(tgt, tgt),
        attention_description=ATTENTION_DESCRIPTIONS[job_args.attention_type],
        dataset_description=dataset_description,
        dataset_terms=dataset_terms,
        dataset_sizes=" / ".join(f"{sizes.get(split, 0):,}" for split in ("train", "validation", "test")),
        dataset_sizes_train=f"{sizes.get('train', 0):,}",
        num_parameters=f"{metrics['num_parameters']:,}",
        tokenizer_model=job_args.tokenizer_model.upper() if job_args.tokenizer_model == "bpe" else "Unigram",
        vocab_size=job_args.vocab_size,
        lr_scheduler_type=hyperparameters["lr_scheduler_type"],
        selected_decoding=metrics["selected_decoding"],
        hyperparameters=hyperparameters,
        train_runtime=f"{train_runtime:.0f} s" if train_runtime is not None else "(unknown)",
        wall_time=f"{metrics['wall_time_s']:.0f} s",
        hardware=torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.machine()})",
        bleu_signature=metrics.get("bleu_signature", "sacreBLEU, 13a tokenization"),
        results=results,
        samples=[{k: v.replace("|", "\\|") for k, v in sample.items()} for sample in metrics["samples"]],
        example_source=metrics["samples"][0]["source"].replace('"', "'") if metrics["samples"] else "Hallo Welt.",
        attention_image=attention_image,
    )


def write_model_card(output_dir: Path, job_args, training_args, metrics, attention_plot: Path | None = None) -> Path:
    """Write `README.md` (the Hub model card) into `output_dir`; the plot is linked relative to it."""
    attention_image = str(Path(attention_plot).relative_to(output_dir)) if attention_plot else None
    card = build_model_card(job_args, training_args, metrics, attention_image)
    path = Path(output_dir) / "README.md"
    card.save(path)
    return path


__all__ = ["TEMPLATE_PATH", "build_model_card", "write_model_card"]
