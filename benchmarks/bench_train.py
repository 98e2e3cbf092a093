"""Training throughput in target tokens per second (forward + backward + clipping + optimizer step).

At the reference setting (emb 256, hidden 512, bi-GRU encoder, vocab 8000, batch 32, source and target length
20), for each attention type:
- `Seq2SeqTrainer` against a plain PyTorch loop over a twin of the same model, the same batches in the same
  order and the optimizer the Trainer builds (target >= 0.9x). Each plain-loop step runs inside the Trainer's
  `on_step_end` callback, so the two alternate step by step and share whatever load the machine has.
- Our model (plain loop) against the tutorial-style `ClassicSeq2Seq` of equal sizes, alternating step by step
  (targets: fastest attention type >= 2x, bahdanau >= 1.2x).

    python -m benchmarks.bench_train [--quick] [--threads 2] [--device cpu|cuda] [--repeats N]
"""

import tempfile

import torch
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback, default_data_collator

from benchmarks.classic_seq2seq import ClassicSeq2Seq, classic_training_step
from benchmarks.common import (
    ATTENTION_TYPES,
    ESTIMATORS,
    Timings,
    build_model,
    interleaved_times,
    medians,
    parse_args,
    print_table,
    random_ids,
    ratios,
    rounds,
    timed,
    write_results,
)

TARGETS = {"trainer_vs_plain": 0.9, "fastest_vs_classic": 2.0, "bahdanau_vs_classic": 1.2}
LEARNING_RATE = 5e-4
MAX_GRAD_NORM = 1.0  # the Trainer's default and the tutorial's clipping


def training_batches(setting, device: str, count: int) -> list[dict[str, torch.Tensor]]:
    batches = []
    for index in range(count):
        input_ids = random_ids(setting.batch_size, setting.source_length, setting.vocab_size, device, seed=2 * index)
        labels = random_ids(setting.batch_size, setting.target_length, setting.vocab_size, device, seed=2 * index + 1)
        labels[:, -1] = 2  # eos
        batches.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels})
    return batches


def training_arguments(output_dir: str, setting, steps: int, device: str) -> Seq2SeqTrainingArguments:
    return Seq2SeqTrainingArguments(
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


def plain_step(model, optimizer, batch: dict[str, torch.Tensor]) -> None:
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    optimizer.step()
    optimizer.zero_grad()


class AlternatingPlainLoop(TrainerCallback):
    """Runs one plain-loop step after every Trainer step and times both; the first Trainer step is warm-up."""

    def __init__(self, step_plain_loop, device: str):
        self.step_plain_loop = step_plain_loop
        self.device = device
        self.timings = Timings(["trainer", "plain"])
        self.trainer_step = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer_step is not None:  # from the end of the last callback: data loading, step, bookkeeping
            self.trainer_step.__exit__()
        with timed(self.timings, "plain", self.device):
            self.step_plain_loop(state.global_step - 1)
        self.trainer_step = timed(self.timings, "trainer", self.device)
        self.trainer_step.__enter__()


def trainer_against_plain_loop(args, attention_type: str) -> dict:
    setting, device = args.setting, args.device
    steps = args.repeats + 1
    batches = training_batches(setting, device, steps)
    examples = [
        {key: value[row] for key, value in batch.items()} for batch in batches for row in range(setting.batch_size)
    ]
    trainer_model = build_model(setting, attention_type, device)
    plain_model = build_model(setting, attention_type, device)  # same seed: the same weights
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = training_arguments(output_dir, setting, steps, device)
        optimizer_class, optimizer_kwargs = Seq2SeqTrainer.get_optimizer_cls_and_kwargs(training_args, plain_model)
        optimizer = optimizer_class(plain_model.parameters(), **optimizer_kwargs)
        plain_model.train()
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
    tokens_per_step = setting.batch_size * setting.target_length
    return {
        "optimizer": optimizer_class.__name__,
        "tokens_per_second": {name: tokens_per_step / value for name, value in medians(timings).items()},
        # throughput ratio = time(plain) / time(Trainer), per alternating pair
        "trainer_vs_plain": ratios(timings, "plain", "trainer"),
        "steps": rounds(timings),
    }


def ours_against_classic(args) -> dict:
    setting, device = args.setting, args.device
    batches = training_batches(setting, device, args.repeats + 1)
    runs, cursors = {}, {}

    def cycling(step_on_batch, name):
        cursors[name] = 0

        def run():
            step_on_batch(batches[cursors[name] % len(batches)])
            cursors[name] += 1

        return run

    torch.manual_seed(0)
    classic = ClassicSeq2Seq(setting.vocab_size, setting.embedding_size, setting.hidden_size).to(device).train()
    classic_optimizer = torch.optim.Adam(classic.parameters(), lr=LEARNING_RATE)  # the tutorial's optimizer

    def classic_step(batch):
        bos = batch["labels"].new_full((setting.batch_size, 1), 1)
        # time-major, BOS first: the tutorial's layout; it predicts the same 20 target tokens as ours
        trg = torch.cat([bos, batch["labels"]], dim=1).t()
        classic_training_step(classic, classic_optimizer, batch["input_ids"].t(), trg, pad_token_id=0)

    runs["classic"] = cycling(classic_step, "classic")
    for attention_type in ATTENTION_TYPES:
        model = build_model(setting, attention_type, device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        runs[attention_type] = cycling(
            lambda batch, model=model, optimizer=optimizer: plain_step(model, optimizer, batch), attention_type
        )
    timings = interleaved_times(runs, device, args.repeats)
    tokens_per_step = setting.batch_size * setting.target_length
    return {
        "classic_parameters": sum(p.numel() for p in classic.parameters()),
        "tokens_per_second": {name: tokens_per_step / value for name, value in medians(timings).items()},
        "speedup_over_classic": {name: ratios(timings, "classic", name) for name in ATTENTION_TYPES},
        "steps": rounds(timings),
    }


def main():
    args = parse_args(__doc__.splitlines()[0])
    args.repeats = args.repeats or (3 if args.quick else 8)
    trainer_results = {
        attention_type: trainer_against_plain_loop(args, attention_type) for attention_type in ATTENTION_TYPES
    }
    classic = ours_against_classic(args)
    speedups = classic["speedup_over_classic"]
    fastest = max(speedups, key=lambda name: speedups[name]["wall"])
    checks = {
        clock: {
            "trainer_vs_plain": min(result["trainer_vs_plain"][clock] for result in trainer_results.values()),
            "fastest_vs_classic": max(speedup[clock] for speedup in speedups.values()),
            "bahdanau_vs_classic": speedups["bahdanau"][clock],
        }
        for clock in ESTIMATORS
    }
    rows = [
        [
            attention_type,
            classic["tokens_per_second"][attention_type],
            *(trainer_results[attention_type]["trainer_vs_plain"][clock] for clock in ESTIMATORS),
            *(speedups[attention_type][clock] for clock in ESTIMATORS),
        ]
        for attention_type in ATTENTION_TYPES
    ]
    rows.append(["classic (tutorial)", classic["tokens_per_second"]["classic"], "", "", "", 1.0, 1.0, 1.0])
    print_table(
        f"training on {args.device}, {args.threads} threads, median ratios of {args.repeats} alternating steps",
        ["model", "plain tok/s", *(f"trainer/plain {clock}" for clock in ESTIMATORS)]
        + [f"x classic {clock}" for clock in ESTIMATORS],
        rows,
    )
    print_table(
        "targets (throughput ratios; higher is better)",
        ["target", "needed", *(label for clock in ESTIMATORS for label in (clock, "met"))],
        [
            [name, TARGETS[name]]
            + [value for clock in ESTIMATORS for value in (checks[clock][name], checks[clock][name] >= TARGETS[name])]
            for name in TARGETS
        ],
    )
    figures = {
        "targets": TARGETS,
        "checks": checks,
        "fastest_attention_type": fastest,
        "trainer_vs_plain": trainer_results,
        "ours_vs_classic": classic,
    }
    print(f"wrote {write_results('bench_train', args, figures)}")


if __name__ == "__main__":
    main()
