"""Train a joint source+target subword tokenizer (BPE or Unigram) with `tokenizers`, as a transformers fast tokenizer.

The special tokens sit at the ids the model expects (pad 0, bos 1 = decoder start, eos 2, unk 3), and every encoded
sequence, source or target, ends with `</s>`.
"""

import itertools
from collections.abc import Iterable, Mapping

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN]  # in id order: 0, 1, 2, 3
TOKENIZER_MODELS = ("bpe", "unigram")


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    model: str = "bpe",
    lowercase: bool = False,
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Learn one subword vocabulary from `texts` (pass both languages for a joint vocabulary).

    Pieces are SentencePiece-style (`▁` marks a word start), so `decode` gives back detokenized text.
    """
    if model not in TOKENIZER_MODELS:
        raise ValueError(f"`model` must be one of {TOKENIZER_MODELS}, got {model!r}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"`vocab_size` must be an integer > {len(SPECIAL_TOKENS)}, got {vocab_size!r}")

    if model == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, show_progress=False
        )
    else:
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token=UNK_TOKEN, show_progress=False
        )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase()] if lowercase else [normalizers.NFKC()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise RuntimeError(f"special tokens did not get the ids 0..3: {SPECIAL_TOKENS}")
    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, eos_id)]
    )
    return wrap_tokenizer(tokenizer)


def train_tokenizer_on_pairs(
    pairs: Iterable[Mapping[str, str]], source_lang: str, target_lang: str, **kwargs
) -> PreTrainedTokenizerFast:
    """`train_tokenizer` on the sources, then the targets, of `pairs`: a list, or a stream's sample (an
    `IterableDataset` column) that is read twice instead of being held in memory. `kwargs` go to `train_tokenizer`."""
    texts = itertools.chain((pair[source_lang] for pair in pairs), (pair[target_lang] for pair in pairs))
    return train_tokenizer(texts, **kwargs)


def tokenize_pairs(
    tokenizer, sources: list[str], targets: list[str], max_source_length: int, max_target_length: int, **kwargs
):
    """`input_ids`/`attention_mask` of the sources cut at `max_source_length` tokens and `labels` of the targets cut
    at `max_target_length` (`</s>` included), as transformers' run_translation example tokenizes them. `kwargs`
    (`padding`, `return_tensors`) go to both calls."""
    inputs = tokenizer(sources, max_length=max_source_length, truncation=True, **kwargs)
    labels = tokenizer(text_target=targets, max_length=max_target_length, truncation=True, **kwargs)
    inputs["labels"] = labels["input_ids"]
    return inputs


def wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    # transformers 5 does not read the special tokens back from the `tokenizers` object: name them here.
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        padding_side="right",
        model_input_names=["input_ids", "attention_mask"],
    )


__all__ = ["SPECIAL_TOKENS", "TOKENIZER_MODELS", "train_tokenizer", "train_tokenizer_on_pairs", "wrap_tokenizer"]
