"""Parallel corpora as a `datasets.DatasetDict` of `{"translation": {source_lang: ..., target_lang: ...}}` records.

One loader for the Multi30k files shipped in `examples/data/multi30k/` and for a user's own corpus: per split, a pair of
plain-text files (one sentence per line, optionally gzipped), a TSV file (source <TAB> target) or a JSON-lines file.
With `streaming=True` the training split is read lazily by `datasets`' own builders instead (`stream_split`).
"""

import csv
import gzip
import json
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, IterableDataset, Value, concatenate_datasets, load_dataset

MULTI30K_DIR = Path(__file__).resolve().parent.parent / "examples" / "data" / "multi30k"
# File-name stems tried for each split, in order; Multi30k calls its splits train / val / test_2016_flickr.
SPLIT_STEMS = {
    "train": ("train",),
    "validation": ("validation", "val", "valid", "dev"),
    "test": ("test", "test_2016_flickr"),
}

SplitFiles = str | Path | tuple[str | Path, str | Path]


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (gzipped when the name ends in `.gz`), without line endings.

    Lines end at "\\n", "\\r\\n" or "\\r", as `datasets`' text builder reads them when the split is streamed, and
    nowhere else: `str.splitlines()` also splits at \\x0b, \\x0c, \\x1c-\\x1e, \\x85, U+2028 and U+2029, and a sentence
    holding one of them would shift every later line of one file against the other.
    """
    path = existing(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:  # universal newlines: CR LF and a lone CR read as LF
            lines = f.read().split("\n")
        if lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        return lines
    except (UnicodeDecodeError, OSError, EOFError) as error:
        raise ValueError(f"cannot read {path} as UTF-8 text: {error}") from None


def read_text_pair(source_path: str | Path, target_path: str | Path) -> tuple[list[str], list[str]]:
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise ValueError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}; "
            "line i of one must translate line i of the other"
        )
    return sources, targets


def read_tsv(path: str | Path) -> tuple[list[str], list[str]]:
    sources, targets = [], []
    for line_number, line in enumerate(read_lines(path), start=1):
        columns = line.split("\t")
        if len(columns) != 2:
            raise ValueError(f"{path}:{line_number}: expected 2 tab-separated columns, got {len(columns)}")
        sources.append(columns[0])
        targets.append(columns[1])
    return sources, targets


def read_jsonl(path: str | Path, source_lang: str, target_lang: str) -> tuple[list[str], list[str]]:
    """Records are `{"translation": {"de": ..., "en": ...}}` or flat `{"de": ..., "en": ...}`; blank lines skipped."""
    sources, targets = [], []
    for line_number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            pair = record.get("translation", record)
            sources.append(str(pair[source_lang]))
            targets.append(str(pair[target_lang]))
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}:{line_number}: expected a JSON object with keys {source_lang!r} and {target_lang!r} "
                f"(optionally under 'translation'): {error!r}"
            ) from None
    return sources, targets


def read_split(files: SplitFiles, source_lang: str, target_lang: str) -> tuple[list[str], list[str]]:
    if isinstance(files, (tuple, list)):
        if len(files) != 2:
            raise ValueError(f"a split needs (source_file, target_file), got {files!r}")
        return read_text_pair(*files)
    name = Path(files).name.removesuffix(".gz")
    if name.endswith(".tsv"):
        return read_tsv(files)
    if name.endswith((".jsonl", ".json")):
        return read_jsonl(files, source_lang, target_lang)
    raise ValueError(f"{files}: a single file must be .tsv or .jsonl (optionally .gz); pass text files as a pair")


def load_parallel_corpus(
    data_files: dict[str, SplitFiles] | str | Path,
    source_lang: str = "de",
    target_lang: str = "en",
    streaming: bool = False,
) -> DatasetDict:
    """Load a parallel corpus from local files into a `DatasetDict` with one `translation` column.

    Args:
        data_files: per split name, a `(source_file, target_file)` pair of text files, a `.tsv` or a `.jsonl` file;
            or a folder, searched with `find_split_files`.
        source_lang, target_lang: the keys of each `translation` record (and the text files' suffixes in a folder).
        streaming: read the "train" split lazily (`stream_split`, an `IterableDataset`); the others, small, in memory.
    """
    if isinstance(data_files, (str, Path)):
        data_files = find_split_files(data_files, source_lang, target_lang)
    splits = {}
    for split, files in data_files.items():
        if streaming and split == "train":
            splits[split] = stream_split(files, source_lang, target_lang)
            continue
        sources, targets = read_split(files, source_lang, target_lang)
        if not sources:
            raise ValueError(f"the {split!r} split is empty: {files}")
        records = [{source_lang: s, target_lang: t} for s, t in zip(sources, targets, strict=True)]
        splits[split] = Dataset.from_dict({"translation": records})
    return DatasetDict(splits)


def stream_split(files: SplitFiles, source_lang: str, target_lang: str) -> IterableDataset:
    """One split as a stream of `{"translation": {source_lang: ..., target_lang: ...}}` records, read by `datasets`'
    text, csv and json builders (`load_dataset(..., streaming=True)`): nothing is held in memory but a block of lines.
    """
    if isinstance(files, (tuple, list)):
        if len(files) != 2:
            raise ValueError(f"a split needs (source_file, target_file), got {files!r}")
        sides = [
            load_dataset("text", data_files=str(existing(path)), split="train", streaming=True).rename_column(
                "text", lang
            )
            for path, lang in zip(files, (source_lang, target_lang), strict=True)
        ]
        columns = concatenate_datasets(sides, axis=1)  # line i of one beside line i of the other
    else:
        name = Path(files).name.removesuffix(".gz")
        if name.endswith(".tsv"):
            columns = load_dataset(
                "csv",
                data_files=str(existing(files)),
                split="train",
                streaming=True,
                delimiter="\t",
                column_names=[source_lang, target_lang],
                quoting=csv.QUOTE_NONE,  # quotes are text, as in `read_tsv`
                na_filter=False,  # "NA", "null" and "" are sentences, not missing values
                features=Features({source_lang: Value("string"), target_lang: Value("string")}),
            )
        elif name.endswith((".jsonl", ".json")):
            columns = load_dataset("json", data_files=str(existing(files)), split="train", streaming=True)
        else:
            raise ValueError(
                f"{files}: a single file must be .tsv or .jsonl (optionally .gz); pass text files as a pair"
            )

    def as_translation(batch: dict[str, list]) -> dict[str, list]:
        pairs = (
            batch["translation"] if "translation" in batch else [dict(zip(batch, row)) for row in zip(*batch.values())]
        )
        try:
            records = [{source_lang: pair[source_lang], target_lang: pair[target_lang]} for pair in pairs]
        except (KeyError, TypeError) as error:
            raise ValueError(
                f"{files}: expected records with keys {source_lang!r} and {target_lang!r} "
                f"(optionally under 'translation'): {error!r}"
            ) from None
        if any(None in record.values() for record in records):  # the shorter file of a pair ran out, or a JSON null
            raise ValueError(f"{files}: a pair lacks one side (text files of different line counts, or a null)")
        return {"translation": records}

    column_names = list(next(iter(columns)))  # the json builder knows them only once it has read a block
    return columns.map(as_translation, batched=True, remove_columns=column_names)


def existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    return path


def find_split_files(data_dir: str | Path, source_lang: str, target_lang: str) -> dict[str, SplitFiles]:
    """Per split, the files of `data_dir` named `<stem>.<lang>[.gz]` (a pair), `<stem>.tsv` or `<stem>.jsonl`.

    A training split is required; validation and test are picked up when present.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder not found: {data_dir}")
    found = {}
    for split, stems in SPLIT_STEMS.items():
        for stem, suffix in ((stem, suffix) for stem in stems for suffix in ("", ".gz")):
            pair = (data_dir / f"{stem}.{source_lang}{suffix}", data_dir / f"{stem}.{target_lang}{suffix}")
            if pair[0].is_file() or pair[1].is_file():
                for lang, path in zip((source_lang, target_lang), pair, strict=True):
                    if not path.is_file():
                        raise FileNotFoundError(
                            f"no {lang!r} text in {data_dir}: {path.name} is missing, and the {stem} files there are "
                            f"in {languages_of(data_dir, stem, suffix)}; set --source_lang/--target_lang to those"
                        )
                found[split] = pair
                break
            single = [data_dir / f"{stem}{ext}{suffix}" for ext in (".tsv", ".jsonl")]
            if any(path.is_file() for path in single):
                found[split] = next(path for path in single if path.is_file())
                break
    if "train" not in found:
        raise FileNotFoundError(
            f"no training data in {data_dir}: expected train.{source_lang} + train.{target_lang} "
            "(optionally .gz), train.tsv or train.jsonl"
        )
    return found


def languages_of(data_dir: Path, stem: str, suffix: str) -> list[str]:
    """The languages of the `<stem>.<lang><suffix>` files in `data_dir`."""
    return sorted(
        path.name[len(stem) + 1 : len(path.name) - len(suffix)] for path in data_dir.glob(f"{stem}.*{suffix}")
    )


def load_multi30k(
    data_dir: str | Path = MULTI30K_DIR, source_lang: str = "de", target_lang: str = "en"
) -> DatasetDict:
    """Multi30k task 1 (Elliott et al. 2016): train 29000, validation 1014, test (2016 Flickr) 1000 pairs."""
    return load_parallel_corpus(data_dir, source_lang, target_lang)


__all__ = [
    "MULTI30K_DIR",
    "find_split_files",
    "load_multi30k",
    "load_parallel_corpus",
    "read_lines",
    "stream_split",
]
