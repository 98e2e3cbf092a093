"""Translate sentences with a saved model folder or a Hub name: `simple-s2s-translate MODEL "Ein Hund läuft."`.

Reads the sentences from the command line, from `--file`, or from stdin (one per line), and writes one translation per
line; greedy or beam search, in batches.
"""

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

import hf_simple_s2s  # noqa: F401  (registers the model with the Auto classes)

from .ensemble import SimpleS2SEnsemble
from .pipeline import valid_text
from .quantize import QUANTIZE_CHOICES, quantize_model

# For a tokenizer saved without a source length (`model_max_length` is then ~1e30): a longer source costs memory in
# proportion to its length (a 1 MB line took 3 GB greedy), and no training sentence comes near it.
FALLBACK_MAX_SOURCE_LENGTH = 512
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class InputWarning(UserWarning):
    """Input that is translated, but not as given: a cut source, bytes that are not UTF-8."""


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


def one_line(text: str) -> str:
    """`text` with every Unicode line break made a space, so that one translation stays one output line."""
    return " ".join(text.splitlines())


def source_max_length(tokenizer: PreTrainedTokenizerBase, max_source_length: int | None) -> int:
    if max_source_length is not None:
        return max_source_length
    saved = tokenizer.model_max_length
    return saved if saved is not None and saved < 10**9 else FALLBACK_MAX_SOURCE_LENGTH


@torch.no_grad()
def translate(
    texts: Sequence[str],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    max_source_length: int | None = None,
    **generate_kwargs,
) -> list[str]:
    """Translations of `texts`, in order, one line each. Batches hold sentences of similar length, so little is padded.

    Sources longer than `max_source_length` tokens (default: the tokenizer's `model_max_length`, else
    `FALLBACK_MAX_SOURCE_LENGTH`) are cut there, with a warning. `generate_kwargs` (`num_beams`, `max_new_tokens`,
    ...) override the model's generation config.
    """
    if isinstance(texts, str):
        raise ValueError("`texts` must be a list of sentences, got a single string")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    max_length = source_max_length(tokenizer, max_source_length)
    if "max_new_tokens" in generate_kwargs:
        # The job saves `max_length` (`training.evaluation.generation_config`): `max_new_tokens` wins over it, but
        # generate() would warn on every batch that both are set.
        generate_kwargs.setdefault("max_length", None)
    texts = [one_line(valid_text(text)) for text in texts]  # a form feed or U+2028 inside a source is a space
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    translations = [""] * len(texts)
    for start in range(0, len(order), batch_size):
        batch_indices = order[start : start + batch_size]
        inputs = tokenizer(
            [texts[i] for i in batch_indices],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(model.device)
        for row, i in enumerate(batch_indices):  # a row as long as the limit may have been cut: count its tokens
            if inputs["attention_mask"][row].sum() == max_length and len(tokenizer(texts[i]).input_ids) > max_length:
                warnings.warn(
                    f"sentence {i + 1} is longer than {max_length} tokens; only its first {max_length} count",
                    InputWarning,
                    stacklevel=3,  # the caller of translate(), past torch.no_grad's wrapper
                )
        # attention_mask must be passed: generate does not infer it for encoder-decoders
        output_ids = model.generate(**inputs, **generate_kwargs)
        for i, text in zip(batch_indices, tokenizer.batch_decode(output_ids, skip_special_tokens=True), strict=True):
            translations[i] = one_line(text).strip()
    return translations


def read_lines(data: bytes, source: str) -> list[str]:
    """The lines of `data`, split at "\\n" only (a "\\r" before it dropped): `str.splitlines()` also splits at
    \\x0b, \\x0c, \\x1c-\\x1e, \\x85, U+2028 and U+2029, and would pair every later translation with the wrong
    source. Bytes that are not UTF-8 become U+FFFD, with a warning naming the lines."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    texts, invalid = [], []
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix(b"\r")
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(line.decode("utf-8", "replace"))
            invalid.append(number)
    if invalid:
        listed = ", ".join(map(str, invalid[:5])) + (", ..." if len(invalid) > 5 else "")
        warnings.warn(
            f"{source}: line {listed} not valid UTF-8; the invalid bytes are translated as U+FFFD", stacklevel=2
        )
    return texts


class OneLineArgumentParser(argparse.ArgumentParser):
    """Reports a bad command line in one line (`prog: error: ...`), without the usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="simple-s2s-translate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", help="a saved model folder or a Hub repository name; several, joined by commas, decode as an ensemble"
    )
    parser.add_argument("text", nargs="*", help="sentences to translate (default: read --file or stdin)")
    parser.add_argument("--file", "-f", help="a text file with one sentence per line ('-' for stdin)")
    parser.add_argument("--num_beams", type=int, help="1 for greedy; default: the model's generation config")
    parser.add_argument("--max_new_tokens", type=int, help="default: the model's generation config")
    parser.add_argument(
        "--max_source_length", type=int, help="cut longer sources there (default: the tokenizer's model_max_length)"
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--device", help="e.g. cpu or cuda (default: cpu)")
    parser.add_argument("--quantize", choices=QUANTIZE_CHOICES, help="int8: int8 weights, faster on the CPU")
    parser.add_argument("--stream", action="store_true", help="greedy, one sentence at a time, words as they come")
    return parser


def check_arguments(parser: OneLineArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a bad command line in one line naming the argument and its value, before anything is loaded."""
    if args.text and args.file:
        parser.error("pass sentences or --file, not both")
    for name in ("batch_size", "num_beams", "max_new_tokens", "max_source_length"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}")
    if args.stream and args.num_beams not in (None, 1):
        parser.error(f"--stream decodes greedily; it cannot be used with --num_beams {args.num_beams}")
    if args.device is not None:
        try:
            torch.empty(0, device=args.device)
        except (RuntimeError, AssertionError) as error:  # an unknown name, or a backend this build lacks
            parser.error(f"--device {args.device}: {str(error).strip().splitlines()[0]}")


def read_texts(parser: OneLineArgumentParser, args: argparse.Namespace) -> list[str]:
    if args.text:
        return args.text
    if args.file and args.file != "-":
        try:
            with open(args.file, "rb") as f:
                return read_lines(f.read(), args.file)
        except OSError as error:
            parser.error(f"cannot read --file {args.file}: {error.strerror}")
    return read_lines(sys.stdin.buffer.read(), "stdin")


def load_or_exit(parser: OneLineArgumentParser, args: argparse.Namespace):
    """`load_translator`, with every failure one line naming the model and what is wrong with it."""
    path = args.model
    for member in path.split(","):  # several, joined by commas: an ensemble
        is_local = os.path.isdir(member)
        # A Hub name is `name` or `org/name`; anything else can only be a folder (transformers would say "Repo id must
        # be in the form 'repo_name' or 'namespace/repo_name'" about it).
        if not is_local and (
            member.startswith(("/", ".", "~")) or member.count("/") > 1 or os.sep in member.replace("/", "")
        ):
            parser.error(f"cannot load model {member!r}: no such folder")
        if is_local and not any(os.path.isfile(os.path.join(member, name)) for name in TOKENIZER_FILES):
            parser.error(
                f"cannot load model {member!r}: the folder holds no tokenizer ({' or '.join(TOKENIZER_FILES)})"
            )
    try:
        return load_translator(path, args.device)
    except Exception as error:  # noqa: BLE001  (OSError, ValueError, the tokenizers' own Exception: all one line)
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        parser.error(f"cannot load model {path!r}: {message}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    check_arguments(parser, args)
    with warnings.catch_warnings():
        # Each warning one line on stderr, as the errors are, every time.
        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = lambda message, *_, **__: print(f"{parser.prog}: warning: {message}", file=sys.stderr)
        texts = read_texts(parser, args)
        # No "Loading weights" bar on every call, and no loading report before the one-line error about a damaged folder
        progress_bars, verbosity = transformers_logging.is_progress_bar_enabled(), transformers_logging.get_verbosity()
        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        try:
            model, tokenizer = load_or_exit(parser, args)
        finally:
            transformers_logging.set_verbosity(verbosity)
            if progress_bars:
                transformers_logging.enable_progress_bar()
        try:
            model = quantize_model(model, args.quantize)
        except ValueError as error:  # e.g. int8 asked for a model on a GPU, or for an ensemble
            parser.error(str(error))
        generate_kwargs = {
            name: getattr(args, name) for name in ("num_beams", "max_new_tokens") if getattr(args, name) is not None
        }
        if args.stream:
            stream(texts, model, tokenizer, args.max_source_length, **generate_kwargs)
            return
        translations = translate(
            texts, model, tokenizer, args.batch_size, max_source_length=args.max_source_length, **generate_kwargs
        )
        for translation in translations:
            print(translation)


def stream(texts: Sequence[str], model, tokenizer, max_source_length: int | None, **generate_kwargs) -> None:
    """Print each translation word by word as greedy search makes it (the saved beam search cannot stream)."""
    from transformers import TextStreamer

    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    for text in texts:
        translate([text], model, tokenizer, 1, max_source_length, **generate_kwargs, num_beams=1, streamer=streamer)


if __name__ == "__main__":
    main()
