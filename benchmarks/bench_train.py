"""Training speed in target tokens per second (forward + backward + clipping + optimizer step).

At the reference setting (emb 256, hidden 512, bi-GRU encoder, vocab 8000, batch 32, source and target length 20):
- `Seq2SeqTrainer` against a plain PyTorch loop over a twin of the same model, the same batches in the same order
  and the optimizer the Trainer builds (target >= 0.9x, each attention type). Each plain-loop step runs inside the
  Trainer's `on_step_end` callback, so the two alternate step by step and share whatever load the machine has.
- Our model (plain loop) against the tutorial-style classic model of equal sizes, in one round-robin (targets:
  fastest attention type >= 2x, bahdanau >= 1.2x).
- Reported: the cost of a training step with scheduled sampling (teacher-forcing ratio 0.5: the stepwise path) or
  with coverage, against teacher forcing, per attention type, in one round-robin.

    python -m benchmarks.bench_train [--quick] [--threads 2] [--device cpu|cuda] [--repeats 8]
"""

import itertools
import tempfile

import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback, default_data_collator

from benchmarks import harness
from benchmarks.baselines.classic_seq2seq import ClassicSeq2Seq, classic_training_step

LEARNING_RATE = 5e-4
MAX_GRAD_NORM = 1.0  # the Trainer's default and the tutorial's clipping
OPTIONS = {  # config overrides of the option-cost round-robin
    "teacher_forcing": {},
    "scheduled_sampling": dict(scheduled_sampling="linear", scheduled_sampling_k=2.0),  # ratio 0.5 at step 1
    "coverage": dict(coverage=True),
}


def training_batches(setting: harness.Setting, device: str, count: int) -> list[dict[str, torch.Tensor]]:
    batches = []
    for index in range(count):
        input_ids = harness.random_ids(
            setting.batch_size, setting.source_length, setting.vocab_size, device, seed=2 * index
        )
        labels = harness.random_ids(
            setting.batch_size, setting.target_length, setting.vocab_size, device, seed=2 * index + 1
        )
        labels[:, -1] = harness.EOS_ID
        batches.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels})
    return batches


def plain_step(model, optimizer, batch: dict[str, torch.Tensor]) -> None:
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    optimizer.step()
    optimizer.zero_grad()


def classic_step(model: ClassicSeq2Seq, optimizer, batch: dict[str, torch.Tensor]) -> None:
    """The tutorial's layout: time-major, BOS first; it predicts the same target tokens as ours."""
    bos = batch["labels"].new_full((batch["labels"].shape[0], 1), harness.BOS_ID)
    trg = torch.cat([bos, batch["labels"]], dim=1).t()
    classic_training_step(model, optimizer, batch["input_ids"].t(), trg, pad_token_id=harness.PAD_ID)


def build_classic(setting: harness.Setting, device: str) -> ClassicSeq2Seq:
    torch.manual_seed(0)
    return ClassicSeq2Seq(setting.vocab_size, setting.embedding_size, setting.hidden_size).to(device).train()


class AlternatingPlainLoop(TrainerCallback):
    """Runs one plain-loop step after every Trainer step and times both; the first Trainer step is warm-up."""

    def __init__(self, step_plain_loop, device: str):
        self.step_plain_loop = step_plain_loop
        self.device = device
        self.timings = harness.Timings(["trainer", "plain"])
        self.trainer_step = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer_step is not None:  # from the end of the last callback: data loading, step, bookkeeping
            self.trainer_step.__exit__()
        with harness.timed(self.timings, "plain", self.device):
            self.step_plain_loop(state.global_step - 1)
        self.trainer_step = harness.timed(self.timings, "trainer", self.device)
        self.trainer_step.__enter__()


def trainer_against_plain_loop(args, attention_type: str) -> dict:
    setting, device = args.setting, args.device
    steps = args.repeats + 1
    batches = training_batches(setting, device, steps)
    examples = [
        {key: value[row] for key, value in batch.items()} for batch in batches for row in range(setting.batch_size)
    ]
    trainer_model = harness.build_model(setting, attention_type, device)
    plain_model = harness.build_model(setting, attention_type, device).train()  # same seed: the same weights
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = Seq2SeqTrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=setting.batch_size,
            max_steps=steps,
            learning_rate=LEARNING_RATE,
            max_grad_norm=MAX_GRAD_NORM,
            train_sampling_strategy="sequential",  # the plain loop's batches, in the plain loop's order
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,  # the batches are made on the device already
            use_cpu=device == "cpu",
            seed=0,
        )
        optimizer_class, optimizer_kwargs = Seq2SeqTrainer.get_optimizer_cls_and_kwargs(training_args, plain_model)
        optimizer = optimizer_class(plain_model.parameters(), **optimizer_kwargs)
        callback = AlternatingPlainLoop(lambda step: plain_step(plain_model, optimizer, batches[step]), device)
        trainer = Seq2SeqTrainer(
            model=trainer_model,
            args=training_args,
            train_dataset=examples,
            data_collator=default_data_collator,
            callbacks=[callback],
        )
        trainer.train()
    timings = callback.timings
    timings["plain"].pop(0), timings.cpu["plain"].pop(0)  # the plain loop's warm-up step, paired with no Trainer step
    return {
        "optimizer": optimizer_class.__name__,
        "tokens_per_second": tokens_per_second(setting, timings),
        "trainer_vs_plain": harness.ratios(timings, "plain", "trainer"),  # throughput: time(plain) / time(Trainer)
        "steps": harness.rounds(timings),
    }


def tokens_per_second(setting: harness.Setting, timings: harness.Timings) -> dict[str, float]:
    tokens_per_step = setting.batch_size * setting.target_length
    return {name: tokens_per_step / seconds for name, seconds in harness.medians(timings).items()}


def cycling(step, batches: list[dict]):
    """A run that takes one training step on the next batch each time it is called."""
    cursor = itertools.count()
    return lambda: step(batches[next(cursor) % len(batches)])


def ours_against_classic(args) -> dict:
    setting, device = args.setting, args.device
    batches = training_batches(setting, device, args.repeats + 1)
    classic = build_classic(setting, device)
    classic_optimizer = torch.optim.Adam(classic.parameters(), lr=LEARNING_RATE)  # the tutorial's optimizer
    runs = {"classic": cycling(lambda batch: classic_step(classic, classic_optimizer, batch), batches)}
    for attention_type in harness.ATTENTION_TYPES:
        model = harness.build_model(setting, attention_type, device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        runs[attention_type] = cycling(lambda batch, m=model, o=optimizer: plain_step(m, o, batch), batches)
    timings = harness.interleaved_times(runs, device, args.repeats)
    return {
        "classic_parameters": sum(p.numel() for p in classic.parameters()),
        "tokens_per_second": tokens_per_second(setting, timings),
        "speedup_over_classic": {name: harness.ratios(timings, "classic", name) for name in harness.ATTENTION_TYPES},
        "steps": harness.rounds(timings),
    }


def option_costs(args) -> dict:
    """Time of a plain-loop step with each option / with teacher forcing, per attention type (higher: slower)."""
    setting, device = args.setting, args.device
    batches = training_batches(setting, device, args.repeats + 1)
    runs = {}
    for attention_type in harness.ATTENTION_TYPES:
        for option, overrides in OPTIONS.items():
            model = harness.build_model(setting, attention_type, device, **overrides).train()
            model.set_training_step(1)  # what ScheduledSamplingCallback does inside Seq2SeqTrainer
            optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
            runs[f"{attention_type}/{option}"] = cycling(
                lambda batch, m=model, o=optimizer: plain_step(m, o, batch), batches
            )
    timings = harness.interleaved_times(runs, device, args.repeats)
    return {
        "cost_vs_teacher_forcing": {
            f"{attention_type}/{option}": harness.ratios(
                timings, f"{attention_type}/{option}", f"{attention_type}/teacher_forcing"
            )
            for attention_type in harness.ATTENTION_TYPES
            for option in list(OPTIONS)[1:]
        },
        "steps": harness.rounds(timings),
    }


def main(argv: list[str] | None = None) -> dict:
    args = harness.parse_args(harness.argument_parser(__doc__), argv, repeats=8)
    trainer = {name: trainer_against_plain_loop(args, name) for name in harness.ATTENTION_TYPES}
    classic = ours_against_classic(args)
    options = option_costs(args)
    speedups = classic["speedup_over_classic"]
    fastest = max(speedups, key=lambda name: speedups[name]["wall"])
    targets = [
        harness.target("Seq2SeqTrainer / plain loop, tokens/s", name, result["trainer_vs_plain"], ">= 0.9")
        for name, result in trainer.items()
    ]
    targets += [
        harness.target("fastest type / classic, training tokens/s", fastest, speedups[fastest], ">= 2.0"),
        harness.target("bahdanau / classic, training tokens/s", "bahdanau", speedups["bahdanau"], ">= 1.2"),
    ]
    targets += [
        harness.target(
            f"training step, {case.split('/')[1].replace('_', ' ')} / teacher forcing", case.split("/")[0], cost
        )
        for case, cost in options["cost_vs_teacher_forcing"].items()
    ]
    results = {"trainer_vs_plain": trainer, "ours_vs_classic": classic, "options": options}
    return harness.finish("bench_train", args, results, targets)


if __name__ == "__main__":
    main()
