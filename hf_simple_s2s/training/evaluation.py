"""The job's evaluation: BLEU/chrF while training (greedy) and at the end (greedy against beam search, the winner kept
as the generation config), and the test samples translated with their attention plotted."""

from pathlib import Path

import numpy as np
import torch
from transformers import GenerationConfig

from ..inference.alignment import argmax_alignment
from ..inference.plotting import cross_attention_matrix, plot_attention
from ..inference.translate import translate
from ..metrics import translation_scores
from ..tokenization import tokenize_pairs


def generation_config(model, max_length: int, num_beams: int, length_penalty: float = 1.0) -> GenerationConfig:
    # Explicit: Seq2SeqTrainer writes its own defaults (max_length=20) into model.generation_config.
    # The limit is `max_length` (the decoder start token included), as transformers' seq2seq models save it: a
    # caller's `max_new_tokens` replaces a saved `max_length`, but a saved `max_new_tokens` would silently win over a
    # caller's `max_length` (Seq2SeqTrainer's `generation_max_length`). `translate()` and the Space pass
    # `max_length=None` beside their `max_new_tokens`, so that generate() does not warn that both are set.
    return GenerationConfig(
        max_length=max_length,
        num_beams=num_beams,
        length_penalty=length_penalty if num_beams > 1 else 1.0,
        early_stopping=num_beams > 1,
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
        decoder_start_token_id=model.config.decoder_start_token_id,
    )


def compute_metrics_fn(tokenizer):
    """The Trainer's `compute_metrics`: the scores of the generated ids (`predict_with_generate`) against the labels."""

    def compute_metrics(eval_prediction) -> dict[str, float]:
        predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        predictions = np.where(predictions < 0, tokenizer.pad_token_id, predictions)
        labels = np.where(labels < 0, tokenizer.pad_token_id, labels)
        hypotheses = tokenizer.batch_decode(predictions, skip_special_tokens=True)
        references = tokenizer.batch_decode(labels, skip_special_tokens=True)
        return translation_scores([h.strip() for h in hypotheses], [r.strip() for r in references])

    return compute_metrics


@torch.no_grad()
def perplexity(
    model,
    tokenizer,
    sources: list[str],
    references: list[str],
    batch_size: int,
    max_source_length: int,
    max_target_length: int,
) -> float:
    """exp of the mean cross-entropy per reference token (`</s>` included) under teacher forcing, without the label
    smoothing that the training loss (and so the Trainer's `eval_loss`) carries. Sources and references are cut as
    the training pairs are."""
    total_loss, total_tokens = 0.0, 0
    for start in range(0, len(sources), batch_size):
        batch = tokenize_pairs(
            tokenizer,
            sources[start : start + batch_size],
            references[start : start + batch_size],
            max_source_length,
            max_target_length,
            padding=True,
            return_tensors="pt",
        ).to(model.device)
        # The targets are padded with the pad id, which no reference holds: those positions are not scored.
        labels = batch.pop("labels")
        labels = labels.masked_fill(labels == tokenizer.pad_token_id, -100)  # (batch, tgt_len)
        # Teacher forcing without `labels`: the model would also compute its own (smoothed) loss over the vocabulary.
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels)
        logits = model(**batch, decoder_input_ids=decoder_input_ids, use_cache=False).logits  # (batch, tgt_len, vocab)
        total_loss += torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum"
        ).item()
        total_tokens += int((labels != -100).sum())
    return float(np.exp(total_loss / max(total_tokens, 1)))


def evaluate_decodings(model, tokenizer, splits, job_args, training_args) -> tuple[dict, GenerationConfig]:
    """BLEU/chrF of greedy and beam search, and the perplexity of the references; the beam settings that win on
    validation become the generation config."""
    candidates = {"greedy": 1, f"beam{job_args.num_beams}": job_args.num_beams}
    results: dict[str, dict[str, dict[str, float]]] = {}
    perplexities: dict[str, float] = {}
    for split_name, split in splits.items():
        sources = [pair[job_args.source_lang] for pair in split["translation"]]
        references = [pair[job_args.target_lang] for pair in split["translation"]]
        perplexities[split_name] = perplexity(
            model,
            tokenizer,
            sources,
            references,
            training_args.per_device_eval_batch_size,
            job_args.max_source_length,
            job_args.max_target_length,
        )
        for decoding, num_beams in candidates.items():
            config = generation_config(model, job_args.max_target_length, num_beams, job_args.length_penalty)
            hypotheses = translate(
                sources,
                model,
                tokenizer,
                batch_size=training_args.per_device_eval_batch_size,
                max_source_length=job_args.max_source_length,
                generation_config=config,
            )
            results.setdefault(split_name, {})[decoding] = translation_scores(hypotheses, references)
    selection_split = "validation" if "validation" in results else next(iter(results))
    best = max(candidates, key=lambda decoding: results[selection_split][decoding]["bleu"])
    best_config = generation_config(model, job_args.max_target_length, candidates[best], job_args.length_penalty)
    evaluation = {
        "scores": results,
        "perplexity": perplexities,
        "selected_decoding": best,
        "selected_on": selection_split,
    }
    return evaluation, best_config


def format_table(scores: dict[str, dict[str, dict[str, float]]], perplexities: dict[str, float] | None = None) -> str:
    rows = [f"{'split':<11}{'decoding':<10}{'BLEU':>7}{'BLEU(lc)':>10}{'chrF':>7}"]
    for split_name, by_decoding in scores.items():
        for decoding, s in by_decoding.items():
            rows.append(
                f"{split_name:<11}{decoding:<10}{s['bleu']:>7.2f}{s['bleu_lowercase']:>10.2f}{s['chrf']:>7.2f}"
            )
    if perplexities:
        rows.append(
            "perplexity (teacher forcing, no smoothing): " + ", ".join(f"{k} {v:.2f}" for k, v in perplexities.items())
        )
    return "\n".join(rows)


@torch.no_grad()
def translate_and_plot(model, tokenizer, sources: list[str], output_dir: Path) -> tuple[list[str], list[Path]]:
    """Translate each sample and plot its attention; the generated ids are fed back in one forward pass, which
    gives the attention of the chosen hypothesis (beam search reorders hypotheses between steps)."""
    translations, paths = [], []
    for i, source in enumerate(sources):
        inputs = tokenizer(source, return_tensors="pt").to(model.device)
        sequence = model.generate(**inputs)[0]  # (1 + tgt_len,): decoder start, tokens, eos
        outputs = model(**inputs, decoder_input_ids=sequence[None, :-1], output_attentions=True)
        weights = cross_attention_matrix(outputs.cross_attentions)  # (tgt_len, src_len)
        translations.append(tokenizer.decode(sequence, skip_special_tokens=True).strip())
        paths.append(
            plot_attention(
                weights,
                tokenizer.convert_ids_to_tokens(inputs["input_ids"][0]),
                tokenizer.convert_ids_to_tokens(sequence[1:]),
                output_dir / "plots" / f"attention_{i}.png",
                title=f"test sentence {i}",
                alignment=argmax_alignment(weights),
            )
        )
    return translations, paths


__all__ = [
    "compute_metrics_fn",
    "evaluate_decodings",
    "format_table",
    "generation_config",
    "translate_and_plot",
]
