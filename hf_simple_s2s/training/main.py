"""The main job: train a German->English SimpleS2S on Multi30k (or your own parallel corpus), evaluate, save.

    simple-s2s-train                                  # preset `tiny`: a few minutes on a laptop CPU
    simple-s2s-train --preset full                    # the published baseline size, for a GPU
    simple-s2s-train my_run.yaml --num_train_epochs 3 # arguments from a JSON/YAML file, then the command line
    simple-s2s-train --output_dir outputs/x --resume  # continue an interrupted run from its last checkpoint

Data -> tokenizer -> collator -> model -> Seq2SeqTrainer -> test BLEU/chrF (greedy and beam) -> samples, attention
plots, model card land in `--output_dir`, ready to upload to the Hub; the Trainer's state (checkpoints, optimizer,
TensorBoard logs) in `--output_dir/training_state`.
"""

import dataclasses
import errno
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch
from accelerate import PartialState
from datasets import Dataset, IterableDataset
from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Seq2SeqTrainer
from transformers.trainer_utils import set_seed

from ..data import load_parallel_corpus
from ..inference.pipeline import share_pipeline
from ..metrics import bleu_signature
from ..model_card import write_model_card
from ..models.simple_s2s import SimpleS2SConfig, SimpleS2SForConditionalGeneration
from ..tokenization import tokenize_pairs, train_tokenizer_on_pairs
from .arguments import (
    CONFIG_FIELDS,
    MainJobArguments,
    UsageError,
    check_output_dir,
    parse_arguments,
    start_output_dir,
)
from .averaging import average_and_keep_if_better
from .callbacks import ScheduledSamplingCallback, StopAfterTime, StopOnInterrupt
from .checkpoints import (
    ChecksumCheckpoints,
    last_complete_checkpoint,
    save_pretrained_atomically,
    training_state_dir,
)
from .evaluation import (
    compute_metrics_fn,
    evaluate_decodings,
    format_table,
    generation_config,
    translate_and_plot,
)
from .locking import OutputDirInUse, OutputDirLock
from .sampling import LengthGroupedSeq2SeqTrainer, bucket_by_length, order_seed


def load_splits(job_args: MainJobArguments) -> dict[str, Dataset]:
    """The train, validation and test splits of --data_dir, each cut to its --max_*_samples; train as a stream with
    --streaming."""
    splits = load_parallel_corpus(job_args.data_dir, job_args.source_lang, job_args.target_lang, job_args.streaming)
    for required in ("validation", "test"):
        if required not in splits:
            raise UsageError(f"no {required} split in --data_dir {job_args.data_dir}")
    limits = {"train": job_args.max_train_samples, "validation": job_args.max_eval_samples}
    limits["test"] = job_args.max_test_samples
    for split_name, limit in limits.items():
        if limit is not None and isinstance(splits[split_name], IterableDataset):
            splits[split_name] = splits[split_name].take(limit)
        elif limit is not None:
            splits[split_name] = splits[split_name].select(range(min(limit, len(splits[split_name]))))
    return splits


def build_model(
    job_args: MainJobArguments, vocab_size: int, label_smoothing: float = 0.0
) -> SimpleS2SForConditionalGeneration:
    values = {name: getattr(job_args, name) for name in CONFIG_FIELDS}
    config = SimpleS2SConfig(**{**values, "vocab_size": vocab_size, "label_smoothing": label_smoothing})
    return SimpleS2SForConditionalGeneration(config)


def tokenize_splits(splits: dict[str, Dataset], tokenizer, job_args: MainJobArguments) -> dict[str, Dataset]:
    """The train and validation splits as `input_ids`/`labels`, for the Trainer."""
    src, tgt = job_args.source_lang, job_args.target_lang

    def preprocess(batch):
        sources = [pair[src] for pair in batch["translation"]]
        targets = [pair[tgt] for pair in batch["translation"]]
        return tokenize_pairs(tokenizer, sources, targets, job_args.max_source_length, job_args.max_target_length)

    return {
        name: splits[name].map(preprocess, batched=True, remove_columns=["translation"])
        for name in ("train", "validation")
    }


def train_job_tokenizer(train_split: Dataset | IterableDataset, job_args: MainJobArguments):
    """The joint tokenizer trained on the training split's both sides (a stream: its first --tokenizer_sample_size
    pairs, read twice, sources then targets, and never held), saving --max_source_length as the length that
    translating cuts longer sources to."""
    sample = train_split.take(job_args.tokenizer_sample_size) if job_args.streaming else train_split
    tokenizer = train_tokenizer_on_pairs(
        sample["translation"],
        job_args.source_lang,
        job_args.target_lang,
        vocab_size=job_args.vocab_size,
        model=job_args.tokenizer_model,
    )
    tokenizer.model_max_length = job_args.max_source_length
    return tokenizer


def bucketed_if_streaming(train_split, job_args: MainJobArguments, training_args):
    """With --streaming, group_by_length's counterpart for a stream: similar lengths within a bounded buffer."""
    if not job_args.streaming:
        return train_split
    global_batch = training_args.train_batch_size * training_args.world_size
    return bucket_by_length(train_split, global_batch, job_args.streaming_buffer_size, order_seed(training_args))


def build_trainer(
    job_args: MainJobArguments, training_args, model, tokenizer, tokenized: dict[str, Dataset], callbacks=()
) -> Seq2SeqTrainer:
    # The model smooths its own loss (`build_model`), so the Trainer's smoother is off. The Trainer keeps its state
    # (checkpoints, runs/) in `<output_dir>/training_state`, out of the folder that is uploaded.
    trainer_args = dataclasses.replace(
        training_args,
        output_dir=training_state_dir(training_args.output_dir),
        label_smoothing_factor=0.0,
        generation_max_length=job_args.max_target_length,
    )
    return LengthGroupedSeq2SeqTrainer(
        model=model,
        args=trainer_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(tokenizer),
        callbacks=list(callbacks),
    )


def exit_with_error(error: Exception | str, code: int = 2) -> NoReturn:
    if int(os.environ.get("RANK", "0")) == 0:  # one line, not one per process
        print(f"simple-s2s-train: error: {error}", file=sys.stderr)
    raise SystemExit(code)


# Below these, a run learned nothing useful in our trials (200 pairs with the tiny preset: "The The The The").
MIN_TRAINING_STEPS = 1000
MIN_TARGET_TOKENS_PER_VOCABULARY_ENTRY = 100


def too_short_warning(train_dataset: Dataset, vocab_size: int, training_args) -> str | None:
    """Why the planned run is likely too short to learn anything, or None: too few optimizer steps, or too few
    target tokens seen for the vocabulary to be learned (the tiny preset on Multi30k: ~2,270 steps, ~660 per entry)."""
    global_batch = (
        training_args.train_batch_size * training_args.world_size * training_args.gradient_accumulation_steps
    )
    steps_per_epoch = math.ceil(len(train_dataset) / global_batch)
    steps = (
        training_args.max_steps if training_args.max_steps > 0 else steps_per_epoch * training_args.num_train_epochs
    )
    epochs = steps / steps_per_epoch
    tokens_seen = epochs * sum(len(labels) for labels in train_dataset["labels"])
    per_entry = tokens_seen / vocab_size
    if steps >= MIN_TRAINING_STEPS and per_entry >= MIN_TARGET_TOKENS_PER_VOCABULARY_ENTRY:
        return None
    return (
        f"{steps:,.0f} training steps over {len(train_dataset):,} pairs see each of the {vocab_size:,} vocabulary "
        f"entries about {per_entry:,.0f} times: likely too short to learn (aim for >= {MIN_TRAINING_STEPS:,} steps and "
        f">= {MIN_TARGET_TOKENS_PER_VOCABULARY_ENTRY} tokens per entry); raise --num_train_epochs, lower --vocab_size, "
        "or add data (docs/training.md, 'Small corpora')"
    )


def main(argv: Sequence[str] | None = None) -> None:
    try:
        job_args, training_args = parse_arguments(sys.argv[1:] if argv is None else argv)
        # Under torchrun / accelerate every process runs this; only the main one writes files and prints. Finding the
        # process index sets up the process group.
        is_main = training_args.process_index == 0
        lock = OutputDirLock(training_args.output_dir)
        if is_main:
            lock.acquire()
    except (UsageError, OutputDirInUse) as error:
        exit_with_error(error)
    try:
        run(job_args, training_args, is_main)
    except (OSError, RuntimeError) as error:
        if not out_of_space(error, training_args.output_dir):
            raise
        checkpoint = last_complete_checkpoint(training_state_dir(training_args.output_dir), require_checksums=True)
        exit_with_error(
            f"no space left on device while writing ({error}); the last complete checkpoint, {checkpoint}, is intact: "
            "free some space and run the same command with --resume",
            code=1,
        )
    finally:
        if is_main:
            lock.release()


def out_of_space(error: BaseException, output_dir: str) -> bool:
    """True for ENOSPC, also when torch's writer reports it as a RuntimeError ("file write failed") on a full disk."""
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if isinstance(error, RuntimeError) and "write failed" in str(error):
            return shutil.disk_usage(output_dir).free < 64 * 2**20
        error = error.__cause__ or error.__context__
    return False


def run(job_args: MainJobArguments, training_args, is_main: bool) -> None:
    """Data -> tokenizer -> model -> training -> evaluation -> files, in every process; the last two in the main one."""
    try:
        output_dir = Path(training_args.output_dir)
        resume_from = check_output_dir(output_dir, job_args)
        splits = load_splits(job_args)
    except (UsageError, FileNotFoundError, ValueError) as error:
        exit_with_error(error)  # FileNotFoundError/ValueError here come from the data files, named in the message
    PartialState().wait_for_everyone()  # every process has checked the folder before the main one changes it
    started = time.perf_counter()
    set_seed(training_args.seed)
    if job_args.torch_threads:
        torch.set_num_threads(job_args.torch_threads)
    src, tgt = job_args.source_lang, job_args.target_lang

    # Tokenizer: trained on the training split's both sides, saved at once so that --resume (and the other
    # processes) reuse it.
    with training_args.main_process_first(local=False, desc="tokenizer"):
        if resume_from is None and is_main:
            try:
                start_output_dir(output_dir, job_args)
            except OSError as error:  # read-only, below a file, ...
                exit_with_error(f"cannot write --output_dir {output_dir}: {error.strerror}")
            tokenizer = train_job_tokenizer(splits["train"], job_args)
            tokenizer.save_pretrained(output_dir)
        else:
            tokenizer = AutoTokenizer.from_pretrained(output_dir)

    tokenized = tokenize_splits(splits, tokenizer, job_args)
    tokenized["train"] = bucketed_if_streaming(tokenized["train"], job_args, training_args)
    # The model smooths its own loss (config.label_smoothing): Seq2SeqTrainer's `label_smoothing_factor` would take
    # the labels away from the forward, and the coverage loss and scheduled sampling with them.
    model = build_model(job_args, vocab_size=len(tokenizer), label_smoothing=training_args.label_smoothing_factor)
    model.generation_config = generation_config(model, job_args.max_target_length, 1)
    interrupt = StopOnInterrupt()
    time_limit = StopAfterTime(60 * job_args.max_train_minutes) if job_args.max_train_minutes else None
    scheduled_sampling = ScheduledSamplingCallback() if job_args.scheduled_sampling != "none" else None
    callbacks = [callback for callback in (interrupt, time_limit, scheduled_sampling) if callback is not None]
    callbacks.append(ChecksumCheckpoints())
    trainer = build_trainer(job_args, training_args, model, tokenizer, tokenized, callbacks)
    if is_main:
        processes = f" in {training_args.world_size} processes" if training_args.world_size > 1 else ""
        pairs = "a stream of pairs" if job_args.streaming else f"{len(tokenized['train']):,} pairs"
        print(f"{model.num_parameters():,} parameters; training on {pairs}{processes}")
        if not job_args.streaming and (
            warning := too_short_warning(tokenized["train"], len(tokenizer), training_args)
        ):
            print(f"simple-s2s-train: warning: {warning}", file=sys.stderr)
    try:
        train_result = trainer.train(resume_from_checkpoint=resume_from)
    finally:
        interrupt.restore_handler()
    if interrupt.interrupted:
        if is_main:
            checkpoint = last_complete_checkpoint(trainer.args.output_dir, require_checksums=True)
            print(
                f"Stopped; last checkpoint: {checkpoint}. Continue with the same command plus --resume.",
                file=sys.stderr,
            )
        raise SystemExit(130)
    if not is_main:
        return  # the final evaluation, files and printing are the main process's; it scores what one process would

    # The best checkpoint (loaded back by the Trainer), or the mean of the last K if that is better on validation.
    k = job_args.average_checkpoints
    averaging = average_and_keep_if_better(trainer, trainer.args.output_dir, k) if k else None
    # Evaluation: greedy vs beam, then the winner is kept.
    model.eval()
    evaluation, best_generation_config = evaluate_decodings(
        model, tokenizer, {"validation": splits["validation"], "test": splits["test"]}, job_args, training_args
    )
    model.generation_config = best_generation_config  # its limit as `max_length` (`generation_config`)
    # model.safetensors, config (auto_map), model code, generation config; crash-safe (the tokenizer is saved already)
    share_pipeline(model, output_dir)  # pipeline(model=folder, trust_remote_code=True) without the package
    save_pretrained_atomically(model, str(output_dir))

    test_pairs = splits["test"].select(range(min(job_args.num_samples, len(splits["test"]))))["translation"]
    sample_translations, plots = translate_and_plot(model, tokenizer, [p[src] for p in test_pairs], output_dir)
    samples = [
        {"source": p[src], "reference": p[tgt], "translation": t}
        for p, t in zip(test_pairs, sample_translations, strict=True)
    ]
    metrics = {
        **evaluation,
        "bleu_signature": bleu_signature(),
        "generation": best_generation_config.to_diff_dict(),
        "num_parameters": model.num_parameters(),
        "train": train_result.metrics,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_validation_bleu_during_training": trainer.state.best_metric,
        "checkpoint_averaging": averaging,
        "stopped_by_time_limit_at_step": time_limit.stopped_at_step if time_limit else None,
        "planned_steps": trainer.state.max_steps,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "dataset_sizes": {name: len(split) for name, split in splits.items() if isinstance(split, Dataset)},
        "samples": samples,
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    write_model_card(output_dir, job_args, training_args, metrics, plots[0] if plots else None)

    print("\n" + format_table(evaluation["scores"], evaluation["perplexity"]))
    print(f"(greedy vs beam chosen on {evaluation['selected_on']}: {evaluation['selected_decoding']})\n")
    for i, sample in enumerate(samples):
        print(f"[{i}] source:      {sample['source']}\n    reference:   {sample['reference']}")
        print(f"    translation: {sample['translation']}")
    print(f"\nAttention plots: {output_dir / 'plots'}/attention_*.png")
    print(f"Model, tokenizer, metrics.json and README.md (model card): {output_dir}")
    print(f"Checkpoints and training logs (not for upload): {trainer.args.output_dir}")
    print(f"Wall time: {metrics['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
