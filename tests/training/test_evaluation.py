"""The job's final evaluation: the perplexity it reports is the unsmoothed per-token cross-entropy of the references,
whatever the batching and padding, and whatever label smoothing the model trains with."""

import math

import torch
from conftest import make_tokenizer, peaky_model

from hf_simple_s2s.training.evaluation import perplexity

SOURCES = ["w5 w9 w14 w22 w7", "w31 w12", "w8 w8 w19 w25", "w4"]
REFERENCES = ["w6 w7", "w10 w11 w12 w13 w14", "w15", "w16 w17 w18"]


def one_by_one_cross_entropy(model, tokenizer) -> tuple[float, int]:
    """The summed cross-entropy of every reference token (eos included) and their number, one pair at a time."""
    total, count = 0.0, 0
    for source, reference in zip(SOURCES, REFERENCES, strict=True):
        batch = tokenizer(source, text_target=reference, return_tensors="pt")
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], labels=batch["labels"]).logits
        log_probs = logits.log_softmax(-1).gather(-1, batch["labels"][..., None])
        total -= log_probs.sum().item()
        count += batch["labels"].numel()
    return total, count


def test_perplexity_is_the_unsmoothed_cross_entropy_of_the_references_in_any_batching():
    tokenizer = make_tokenizer("words")
    model = peaky_model(label_smoothing=0.3)  # training smooths; the reported perplexity must not
    total, count = one_by_one_cross_entropy(model, tokenizer)
    assert count == sum(len(r.split()) + 1 for r in REFERENCES)  # `</s>` is scored too
    expected = math.exp(total / count)
    for batch_size in (1, 3, 4):  # padded batches score the same tokens
        assert math.isclose(
            perplexity(model, tokenizer, SOURCES, REFERENCES, batch_size, 64, 64), expected, rel_tol=1e-5
        )


def test_perplexity_cuts_the_references_at_the_target_length_and_the_sources_at_the_source_length():
    """As the training pairs are cut (`tokenize_pairs`): long sources must not shorten the scored references, and
    `max_target_length` must."""
    tokenizer = make_tokenizer("words")
    model = peaky_model()
    full = perplexity(model, tokenizer, SOURCES, REFERENCES, 2, 64, 64)
    # Every reference fits in 6 tokens (`</s>` included): cutting only the sources to 2 tokens changes the sources
    # the model reads, never which reference tokens are scored.
    short_sources = perplexity(model, tokenizer, SOURCES, REFERENCES, 2, 2, 6)
    cut_sources = [" ".join(source.split()[:1]) for source in SOURCES]  # 1 word + `</s>` = 2 tokens
    assert math.isclose(short_sources, perplexity(model, tokenizer, cut_sources, REFERENCES, 2, 64, 64), rel_tol=1e-5)
    # Cut to 2 tokens, a reference keeps its first word and its `</s>`, as a cut source does.
    cut_references = perplexity(model, tokenizer, SOURCES, REFERENCES, 2, 64, 2)
    assert not math.isclose(cut_references, full, rel_tol=1e-3)
    total, count = 0.0, 0
    for source, reference in zip(SOURCES, REFERENCES, strict=True):
        labels = tokenizer(text_target=reference.split()[0], return_tensors="pt")["input_ids"]  # (1, 2)
        with torch.no_grad():
            logits = model(input_ids=tokenizer(source, return_tensors="pt")["input_ids"], labels=labels).logits
        total -= logits.log_softmax(-1).gather(-1, labels[..., None]).sum().item()
        count += labels.numel()
    assert count == 2 * len(REFERENCES)
    assert math.isclose(cut_references, math.exp(total / count), rel_tol=1e-5)
