"""The job's training order: batches of similar lengths (transformers' `LengthGroupedSampler`), drawn from a generator
seeded by (seed, epoch) so that a run resumed mid-epoch replays exactly the order it was interrupted in; for a stream
(`--streaming`), the same grouping within a bounded buffer (`bucket_by_length`)."""

import torch
from datasets import IterableDataset
from transformers import Seq2SeqTrainer
from transformers.trainer_pt_utils import LengthGroupedSampler


def order_seed(training_args) -> int:
    """The seed of the training order: `data_seed`, else `seed`, as the Trainer's own samplers take it."""
    return training_args.data_seed if training_args.data_seed is not None else training_args.seed


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """`LengthGroupedSampler` whose permutation depends on `seed + epoch` alone.

    transformers' own draws from the global torch RNG when an epoch starts, whose state there depends on every dropout
    mask drawn before; a run resumed mid-epoch restores that state only after its first batch, so it skipped the
    batches of another permutation and trained on a different order (the accelerate `SeedableRandomSampler` that
    `train_sampling_strategy="random"` gets is seeded per epoch in the same way).
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed + epoch)


class LengthGroupedSeq2SeqTrainer(Seq2SeqTrainer):
    """`Seq2SeqTrainer` whose `group_by_length` order resumes exactly (see `EpochSeededLengthGroupedSampler`)."""

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            return EpochSeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, order_seed(self.args))
        return sampler

    def _run_epoch(self, model, epoch, train_dataloader, *args, **kwargs):
        # accelerate forwards `set_epoch` through some wrappers only: not through the SkipBatchSampler(BatchSamplerShard)
        # of an epoch resumed in several processes. The skipping data loader wraps this same sampler.
        for sampler in wrapped_samplers(train_dataloader):
            if isinstance(sampler, EpochSeededLengthGroupedSampler):
                sampler.set_epoch(epoch)
        return super()._run_epoch(model, epoch, train_dataloader, *args, **kwargs)


def wrapped_samplers(loader_or_sampler, depth: int = 8):
    """The samplers and batch samplers that a data loader wraps, outermost first."""
    for name in ("batch_sampler", "sampler"):
        inner = getattr(loader_or_sampler, name, None)
        if inner is not None and inner is not loader_or_sampler and depth > 0:
            yield inner
            yield from wrapped_samplers(inner, depth - 1)


def bucket_by_length(
    examples: IterableDataset, batch_size: int, buffer_size: int, seed: int, chunk_batches: int = 50
) -> IterableDataset:
    """Tokenized `examples` shuffled in a buffer of `buffer_size`, then cut into chunks of `chunk_batches` batches,
    each sorted by source length and given back batch by batch in a random order: batches of similar lengths (less
    padding, as `group_by_length`) while at most `buffer_size + chunk_batches * batch_size` examples are held. 50
    batches a chunk: the mega-batch of transformers' `LengthGroupedSampler` (16 measured 0.87x the in-memory path's steps/s,
    50 1.24x; `benchmarks/bench_streaming.py`).

    The order depends on `seed` and the epoch (`set_epoch`, which the Trainer calls) alone.
    """
    chunk_size = chunk_batches * batch_size

    def sort_chunk(chunk: dict[str, list], indices: list[int]) -> dict[str, list]:
        by_length = sorted(range(len(indices)), key=lambda row: len(chunk["input_ids"][row]))
        batches = [by_length[start : start + batch_size] for start in range(0, len(by_length), batch_size)]
        generator = torch.Generator().manual_seed(seed + indices[0])  # the chunk's first position in the stream
        order = [row for batch in torch.randperm(len(batches), generator=generator) for row in batches[batch]]
        return {name: [values[row] for row in order] for name, values in chunk.items()}

    shuffled = examples.shuffle(seed=seed, buffer_size=buffer_size)
    return shuffled.map(sort_chunk, batched=True, batch_size=chunk_size, with_indices=True)


__all__ = ["EpochSeededLengthGroupedSampler", "LengthGroupedSeq2SeqTrainer", "bucket_by_length", "order_seed"]
