"""Translate sentences with a saved model folder or a Hub name: `simple-s2s-translate MODEL "Ein Hund läuft."`.

Reads the sentences from the command line, from `--file`, or from stdin (one per line), and writes one translation per
line; greedy or beam search, in batches.
"""

import argparse
import sys
from collections.abc import Sequence

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

import hf_simple_s2s  # noqa: F401  (registers the model with the Auto classes)

from .ensemble import SimpleS2SEnsemble


def load_translator(
    model_name_or_path: str | Sequence[str], device: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model (in eval mode) and tokenizer of a saved folder or Hub repository; several (a list, or names joined
    by commas) decode as one `SimpleS2SEnsemble` with the first one's tokenizer."""
    names = model_name_or_path.split(",") if isinstance(model_name_or_path, str) else list(model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(names[0])
    if len(names) > 1:
        model = SimpleS2SEnsemble.from_pretrained(names)
    else:
        model = AutoModelForSeq2SeqLM.from_pretrained(names[0])
    return model.to(device or "cpu").eval(), tokenizer


@torch.no_grad()
def translate(
    texts: Sequence[str],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    max_source_length: int | None = None,
    **generate_kwargs,
) -> list[str]:
    """Translations of `texts`, in order. Batches hold sentences of similar length, so little is padded.

    `generate_kwargs` (`num_beams`, `max_new_tokens`, ...) override the model's generation config.
    """
    if isinstance(texts, str):
        raise ValueError("`texts` must be a list of sentences, got a single string")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    translations = [""] * len(texts)
    for start in range(0, len(order), batch_size):
        batch_indices = order[start : start + batch_size]
        inputs = tokenizer(
            [texts[i] for i in batch_indices],
            padding=True,
            truncation=max_source_length is not None,
            max_length=max_source_length,
            return_tensors="pt",
        ).to(model.device)
        # attention_mask must be passed: generate does not infer it for encoder-decoders
        output_ids = model.generate(**inputs, **generate_kwargs)
        for i, text in zip(batch_indices, tokenizer.batch_decode(output_ids, skip_special_tokens=True), strict=True):
            translations[i] = text.strip()
    return translations


class OneLineArgumentParser(argparse.ArgumentParser):
    """Reports a bad command line in one line (`prog: error: ...`), without the usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="simple-s2s-translate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", help="a saved model folder or a Hub repository name; several, joined by commas, decode as an ensemble"
    )
    parser.add_argument("text", nargs="*", help="sentences to translate (default: read --file or stdin)")
    parser.add_argument("--file", "-f", help="a text file with one sentence per line ('-' for stdin)")
    parser.add_argument("--num_beams", type=int, help="1 for greedy; default: the model's generation config")
    parser.add_argument("--max_new_tokens", type=int, help="default: the model's generation config")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--device", help="e.g. cpu or cuda (default: cpu)")
    args = parser.parse_intermixed_args(argv)
    if args.text and args.file:
        parser.error("pass sentences or --file, not both")
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.num_beams is not None and args.num_beams < 1:
        parser.error(f"--num_beams must be >= 1, got {args.num_beams}")

    if args.text:
        texts = args.text
    elif args.file and args.file != "-":
        try:
            with open(args.file, encoding="utf-8") as f:
                texts = f.read().splitlines()
        except OSError as error:
            parser.error(f"cannot read --file {args.file}: {error.strerror}")
    else:
        texts = sys.stdin.read().splitlines()

    try:
        model, tokenizer = load_translator(args.model, args.device)
    except (OSError, ValueError) as error:  # ValueError: ensemble members that do not share the tokenizer
        parser.error(f"cannot load model {args.model!r}: {str(error).splitlines()[0]}")
    generate_kwargs = {k: v for k, v in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens)) if v}
    for translation in translate(texts, model, tokenizer, batch_size=args.batch_size, **generate_kwargs):
        print(translation)


if __name__ == "__main__":
    main()
