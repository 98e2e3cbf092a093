"""`--streaming`: the training split read as a `datasets` stream, length-bucketed in a bounded buffer, the tokenizer
trained on the stream's first pairs."""

import json

import pytest
from datasets import IterableDataset
from main_job_helpers import NUM_TRAIN, tiny_run_args, write_small_corpus

from hf_simple_s2s.training.arguments import UsageError, parse_arguments
from hf_simple_s2s.training.main import main
from hf_simple_s2s.training.sampling import bucket_by_length


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_small_corpus(tmp_path_factory.mktemp("corpus"))


def test_streaming_run_trains_with_the_tokenizer_of_its_sample_as_an_in_memory_run_would(data_dir, tmp_path, capsys):
    sample = NUM_TRAIN // 2  # the stream goes on past the tokenizer's sample
    main([*tiny_run_args(data_dir, tmp_path / "streamed"), "--streaming", f"--tokenizer_sample_size={sample}"])
    assert "training on a stream of pairs" in capsys.readouterr().out
    main([*tiny_run_args(data_dir, tmp_path / "in_memory"), f"--max_train_samples={sample}"])
    streamed, in_memory = (
        json.loads((tmp_path / run / "tokenizer.json").read_text()) for run in ("streamed", "in_memory")
    )
    assert streamed["model"]["vocab"] == in_memory["model"]["vocab"]
    assert streamed["model"]["merges"] == in_memory["model"]["merges"]
    metrics = json.loads((tmp_path / "streamed" / "metrics.json").read_text())
    assert metrics["planned_steps"] == 4 and metrics["train"]["train_loss"] > 0


def test_streaming_without_max_steps_is_refused_in_one_line():
    with pytest.raises(UsageError, match=r"^--streaming needs --max_steps > 0 .*, got -1$"):
        parse_arguments(["--streaming"])
    job_args, training_args = parse_arguments(["--streaming", "--max_steps=10"])
    assert job_args.streaming and training_args.max_steps == 10


def numbered_stream(count: int, seed: int = 0) -> IterableDataset:
    """Examples that carry their position in the stream, with source lengths 1..40 in a scrambled order."""

    def examples():
        for position in range(count):
            yield {"position": position, "input_ids": [5] * (1 + (position * 7919 + seed) % 40)}

    return IterableDataset.from_generator(examples)


@pytest.mark.parametrize("buffer_size", [1, 50, 300])
def test_length_buckets_hold_every_example_once_from_within_the_buffer(buffer_size):
    count, batch_size, chunk_batches = 1000, 8, 4
    buckets = bucket_by_length(numbered_stream(count), batch_size, buffer_size, seed=0, chunk_batches=chunk_batches)
    positions = [example["position"] for example in buckets]
    assert sorted(positions) == list(range(count))
    held = buffer_size + chunk_batches * batch_size
    assert all(position < index + held for index, position in enumerate(positions)), "read past the buffer"
    lengths = [len(example["input_ids"]) for example in buckets]
    batches = [lengths[start : start + batch_size] for start in range(0, count, batch_size)]
    spread = sum(max(batch) - min(batch) for batch in batches) / len(batches)
    assert spread < 40 / 4  # an unsorted batch of 8 spans ~31 of the 40 lengths; a sorted chunk of 32, ~4


def test_length_buckets_depend_on_the_seed_and_epoch_alone():
    def order(seed, epoch):
        buckets = bucket_by_length(numbered_stream(200), 4, 50, seed=seed)
        buckets.set_epoch(epoch)
        return [example["position"] for example in buckets]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1) != order(1, 1)
