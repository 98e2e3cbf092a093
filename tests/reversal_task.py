"""A synthetic task for the reliability tests: learn to reverse id sequences with `Seq2SeqTrainer`.

Importable by the tests and runnable as a script, so that the same training can be started in a subprocess
(to be interrupted by a signal) or under `torchrun` (several processes):

    PYTHONPATH=. python tests/reversal_task.py --output_dir /tmp/run --max_steps 12 --save_steps 4
    PYTHONPATH=. torchrun --nproc_per_node 2 tests/reversal_task.py --output_dir /tmp/ddp --batch_size 4
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from transformers import (
    DataCollatorForSeq2Seq,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)

sys.path.insert(0, str(Path(__file__).parent))  # `conftest` when run as a script
from conftest import VOCAB_SIZE, make_tokenizer, tiny_model  # noqa: E402

from hf_simple_s2s.training.checkpoints import last_complete_checkpoint  # noqa: E402

FIRST_WORD_ID = 4  # after <pad>=0 <s>=1 </s>=2 <unk>=3


def reversal_examples(count: int, seed: int, min_len: int = 3, max_len: int = 8) -> list[dict[str, list[int]]]:
    """`count` pairs source -> reversed source (+ eos), over word ids 4..VOCAB_SIZE-1."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        source = [rng.randrange(FIRST_WORD_ID, VOCAB_SIZE) for _ in range(rng.randint(min_len, max_len))]
        examples.append({"input_ids": source + [2], "labels": source[::-1] + [2]})
    return examples


class PauseAtStep(TrainerCallback):
    """Write `marker` after optimizer step `step`, then sleep so that a parent process can send a signal."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, marker

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            Path(self.marker).write_text(str(state.global_step))
            time.sleep(600)


class SlowSteps(TrainerCallback):
    """Stretch every step, so that a signal sent at a random time lands anywhere, checkpoint saves included."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(self.seconds)


class DumpWeightsAtEnd(TrainerCallback):
    """Every process writes its own replica's weights and its loss curve, to compare replicas after DDP."""

    def __init__(self, folder: str):
        self.folder = folder

    def on_train_end(self, args, state, control, model=None, **kwargs):
        from safetensors.torch import save_file

        rank = args.process_index
        save_file({k: v.detach().clone() for k, v in model.state_dict().items()}, self._path(rank, "st"))
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        Path(self._path(rank, "json")).write_text(json.dumps({"losses": losses, "world_size": args.world_size}))

    def _path(self, rank: int, suffix: str) -> str:
        return os.path.join(self.folder, f"replica-{rank}.{'safetensors' if suffix == 'st' else 'json'}")


def make_trainer(
    output_dir: str,
    *,
    seed: int = 0,
    max_steps: int = 12,
    batch_size: int = 8,
    save_steps: int = 4,
    train_size: int = 96,
    min_len: int = 3,
    max_len: int = 8,
    dropout: float = 0.1,
    attention_type: str = "bahdanau",
    callbacks: tuple[TrainerCallback, ...] = (),
    **argument_overrides,
) -> Seq2SeqTrainer:
    """A `Seq2SeqTrainer` over the reversal task, with dropout on so that resuming must restore the RNG too."""
    model = tiny_model(seed=seed, dropout=dropout, attention_type=attention_type).train()
    arguments = dict(
        output_dir=output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=16,
        learning_rate=1e-2,
        warmup_steps=2,
        lr_scheduler_type="linear",
        save_strategy="steps",
        save_steps=save_steps,
        logging_steps=1,
        seed=seed,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        predict_with_generate=False,
        ddp_find_unused_parameters=False,  # every parameter takes part in every step
    )
    arguments.update(argument_overrides)
    tokenizer = make_tokenizer("words")  # the ids of the task are its words
    return Seq2SeqTrainer(
        model=model,
        args=Seq2SeqTrainingArguments(**arguments),
        train_dataset=reversal_examples(train_size, seed=seed + 1, min_len=min_len, max_len=max_len),
        eval_dataset=reversal_examples(32, seed=seed + 2, min_len=min_len, max_len=max_len),
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )


def loss_curve(trainer: Seq2SeqTrainer) -> list[tuple[int, float]]:
    """(step, training loss) for every logged step."""
    return [(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_steps", type=int, default=12)
    parser.add_argument("--save_steps", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--train_size", type=int, default=96)
    parser.add_argument("--min_len", type=int, default=3)
    parser.add_argument("--max_len", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="resume from the last complete checkpoint")
    parser.add_argument("--pause_at_step", type=int, help="write --marker after this step, then sleep")
    parser.add_argument("--marker")
    parser.add_argument("--step_sleep", type=float, default=0.0)
    parser.add_argument("--dump_replicas", help="folder where every process writes its weights at the end")
    args = parser.parse_args(argv)

    callbacks = []
    if args.pause_at_step is not None:
        callbacks.append(PauseAtStep(args.pause_at_step, args.marker))
    if args.step_sleep:
        callbacks.append(SlowSteps(args.step_sleep))
    if args.dump_replicas:
        callbacks.append(DumpWeightsAtEnd(args.dump_replicas))
    trainer = make_trainer(
        args.output_dir,
        seed=args.seed,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        save_steps=args.save_steps,
        train_size=args.train_size,
        min_len=args.min_len,
        max_len=args.max_len,
        dropout=args.dropout,
        callbacks=tuple(callbacks),
    )
    checkpoint = last_complete_checkpoint(args.output_dir) if args.resume else None
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()


if __name__ == "__main__":
    main()
