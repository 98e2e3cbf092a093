"""The parallel-corpus loader: the shipped Multi30k files, a user's own files in every format, and the errors."""

import gzip
import json

import pytest

from hf_simple_s2s.data import (
    MULTI30K_DIR,
    find_split_files,
    load_multi30k,
    load_parallel_corpus,
    read_lines,
    stream_split,
)

PAIRS = [("Ein Hund läuft.", "A dog runs."), ("Zwei Männer\tlachen?", "Two men laugh?"), ("Ja.", "Yes.")]
PAIRS_NO_TAB = [(s.replace("\t", " "), t) for s, t in PAIRS]


def write_lines(path, lines):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return path


def as_pairs(dataset, source_lang="de", target_lang="en"):
    return [(record[source_lang], record[target_lang]) for record in dataset["translation"]]


@pytest.fixture(scope="module")
def multi30k():
    return load_multi30k()


def test_multi30k_has_the_published_split_sizes(multi30k):
    assert {name: len(split) for name, split in multi30k.items()} == {"train": 29000, "validation": 1014, "test": 1000}


@pytest.mark.parametrize(("split", "stem"), [("train", "train"), ("validation", "val"), ("test", "test_2016_flickr")])
def test_multi30k_records_are_the_aligned_lines_of_the_shipped_files(multi30k, split, stem):
    german = read_lines(MULTI30K_DIR / f"{stem}.de.gz")
    english = read_lines(MULTI30K_DIR / f"{stem}.en.gz")
    for i in (0, len(german) // 2, len(german) - 1):
        assert multi30k[split][i]["translation"] == {"de": german[i], "en": english[i]}


def test_multi30k_loads_in_the_other_direction(multi30k):
    reverse = load_multi30k(source_lang="en", target_lang="de")
    assert as_pairs(reverse["test"], "en", "de") == [(t, s) for s, t in as_pairs(multi30k["test"])]


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_text_pair_tsv_and_jsonl_give_the_same_dataset(tmp_path, suffix):
    sources, targets = [s for s, _ in PAIRS_NO_TAB], [t for _, t in PAIRS_NO_TAB]
    text_pair = (write_lines(tmp_path / f"a.de{suffix}", sources), write_lines(tmp_path / f"a.en{suffix}", targets))
    tsv = write_lines(tmp_path / f"a.tsv{suffix}", [f"{s}\t{t}" for s, t in PAIRS_NO_TAB])
    flat_jsonl = write_lines(tmp_path / f"a.jsonl{suffix}", [json.dumps({"de": s, "en": t}) for s, t in PAIRS])
    nested_jsonl = write_lines(
        tmp_path / f"b.jsonl{suffix}", [json.dumps({"translation": {"de": s, "en": t}}) for s, t in PAIRS]
    )
    corpus = load_parallel_corpus({"train": text_pair, "validation": tsv, "test": flat_jsonl, "extra": nested_jsonl})
    assert as_pairs(corpus["train"]) == PAIRS_NO_TAB
    assert as_pairs(corpus["validation"]) == PAIRS_NO_TAB
    assert as_pairs(corpus["test"]) == PAIRS  # JSON keeps the tab inside the sentence
    assert as_pairs(corpus["extra"]) == PAIRS


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_a_streamed_split_holds_the_records_read_in_memory(tmp_path, suffix):
    pairs = [*PAIRS_NO_TAB, ('"Na" , sagt er.', "NA"), ("null", "")]  # quotes, pandas' NA markers, an empty side
    files = {
        "pair": (
            write_lines(tmp_path / f"a.de{suffix}", [s for s, _ in pairs]),
            write_lines(tmp_path / f"a.en{suffix}", [t for _, t in pairs]),
        ),
        "tsv": write_lines(tmp_path / f"a.tsv{suffix}", [f"{s}\t{t}" for s, t in pairs]),
        "flat": write_lines(
            tmp_path / f"a.jsonl{suffix}", [json.dumps({"de": s, "en": t, "id": 1}) for s, t in pairs]
        ),
        "nested": write_lines(
            tmp_path / f"b.jsonl{suffix}",
            [json.dumps({"translation": {"de": s, "en": t, "fr": "?"}}) for s, t in pairs],
        ),
    }
    in_memory = load_parallel_corpus(files, "de", "en")
    for name, split_files in files.items():
        streamed = [record["translation"] for record in stream_split(split_files, "de", "en")]
        assert streamed == list(in_memory[name]["translation"]), name


def test_lines_end_only_at_line_breaks_in_memory_and_streamed(tmp_path):
    # Characters that str.splitlines() treats as line ends inside sentences, and the three line endings that
    # `datasets`' text builder knows (LF, CR LF, a lone CR): every source stays beside its target.
    sources = ["Ein Hund\u2028läuft.", "Seite\x0czwei", "Eins\x85zwei\x1cdrei", "Ende"]
    targets = ["A dog runs.", "Page two", "One two three", "End"]
    endings = ["\n", "\r\n", "\r", "\n"]
    for path, lines in ((tmp_path / "a.de", sources), (tmp_path / "a.en", targets)):
        path.write_bytes("".join(line + end for line, end in zip(lines, endings, strict=True)).encode())
    files = (tmp_path / "a.de", tmp_path / "a.en")
    expected = [{"de": s, "en": t} for s, t in zip(sources, targets, strict=True)]

    assert list(load_parallel_corpus({"train": files}, "de", "en")["train"]["translation"]) == expected
    assert [record["translation"] for record in stream_split(files, "de", "en")] == expected


def test_a_streamed_pair_of_different_line_counts_is_refused(tmp_path):
    files = (write_lines(tmp_path / "a.de", ["a", "b", "c"]), write_lines(tmp_path / "a.en", ["A", "B"]))
    with pytest.raises(ValueError, match=r"a\.de.*a pair lacks one side \(text files of different line counts"):
        list(stream_split(files, "de", "en"))


def test_streaming_reads_the_training_split_of_a_folder_as_a_stream(multi30k):
    corpus = load_parallel_corpus(MULTI30K_DIR, streaming=True)
    assert not isinstance(corpus["train"], type(corpus["test"]))
    assert list(corpus["train"].take(50)) == list(multi30k["train"].select(range(50)))
    assert corpus["test"][:] == multi30k["test"][:]


def test_a_folder_is_searched_for_splits_by_their_usual_names(tmp_path):
    write_lines(tmp_path / "train.de", ["a", "b"])
    write_lines(tmp_path / "train.en", ["A", "B"])
    write_lines(tmp_path / "dev.tsv", ["c\tC"])
    write_lines(tmp_path / "test.jsonl.gz", [json.dumps({"de": "d", "en": "D"})])
    assert set(find_split_files(tmp_path, "de", "en")) == {"train", "validation", "test"}
    corpus = load_parallel_corpus(tmp_path)
    assert {name: as_pairs(split) for name, split in corpus.items()} == {
        "train": [("a", "A"), ("b", "B")],
        "validation": [("c", "C")],
        "test": [("d", "D")],
    }


def test_missing_file_is_named(tmp_path):
    write_lines(tmp_path / "train.de", ["a"])
    with pytest.raises(FileNotFoundError, match=r"no 'en' text in .*: train\.en is missing, .* in \['de'\]"):
        load_parallel_corpus(tmp_path)


def test_folder_without_training_data_is_named(tmp_path):
    write_lines(tmp_path / "val.tsv", ["a\tA"])
    with pytest.raises(FileNotFoundError, match=f"no training data in {tmp_path}"):
        load_parallel_corpus(tmp_path)


def test_mismatched_line_counts_name_both_files_and_counts(tmp_path):
    pair = (write_lines(tmp_path / "x.de", ["a", "b", "c"]), write_lines(tmp_path / "x.en", ["A", "B"]))
    with pytest.raises(ValueError, match=r"x\.de has 3 lines but .*x\.en has 2"):
        load_parallel_corpus({"train": pair})


def test_empty_corpus_is_refused(tmp_path):
    pair = (write_lines(tmp_path / "x.de", []), write_lines(tmp_path / "x.en", []))
    with pytest.raises(ValueError, match=r"the 'train' split is empty: .*x\.de"):
        load_parallel_corpus({"train": pair})


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        ("bad.tsv", "only one column", r"bad\.tsv:2: expected 2 tab-separated columns, got 1"),
        ("bad.jsonl", '{"de": "a"}', r"bad\.jsonl:2: expected a JSON object with keys 'de' and 'en'"),
        ("bad.jsonl", "not json", r"bad\.jsonl:2: expected a JSON object"),
    ],
)
def test_malformed_lines_are_reported_with_file_and_line(tmp_path, name, line, message):
    good = "a\tA" if name.endswith(".tsv") else json.dumps({"de": "a", "en": "A"})
    path = write_lines(tmp_path / name, [good, line])
    with pytest.raises(ValueError, match=message):
        load_parallel_corpus({"train": path})


def test_unknown_single_file_format_is_refused(tmp_path):
    path = write_lines(tmp_path / "corpus.txt", ["a"])
    with pytest.raises(ValueError, match=r"corpus\.txt: a single file must be \.tsv or \.jsonl"):
        load_parallel_corpus({"train": path})
