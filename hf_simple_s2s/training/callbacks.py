"""The job's `Seq2SeqTrainer` callbacks: scheduled sampling (Bengio et al. 2015), whose teacher forcing ratio follows
the step, and the two ways to end training early with a checkpoint: Ctrl-C and a time limit."""

import signal
import sys
import time

import torch
import torch.distributed as dist
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class ScheduledSamplingCallback(TrainerCallback):
    """Sets the model's teacher forcing ratio from its config's schedule before every optimizer step.

    Pass it to `Seq2SeqTrainer(..., callbacks=[ScheduledSamplingCallback()])` with a model whose config sets
    `scheduled_sampling` ("linear", "exponential" or "inverse_sigmoid") and `scheduled_sampling_k`. The ratio in
    use is logged as `teacher_forcing_ratio`.
    """

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model=None, **kwargs
    ):
        if not hasattr(model, "set_training_step"):
            raise ValueError(
                f"ScheduledSamplingCallback needs a SimpleS2SForConditionalGeneration, got {type(model).__name__}"
            )
        model.set_training_step(state.global_step)

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, model=None, **kwargs
    ):
        if logs is None or "loss" not in logs or model is None:
            return
        logs["teacher_forcing_ratio"] = model.teacher_forcing_ratio  # for the loggers called after this callback
        if state.log_history and state.log_history[-1].get("step") == state.global_step:  # a copy of `logs`
            state.log_history[-1]["teacher_forcing_ratio"] = model.teacher_forcing_ratio


def on_any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when `flag` is True on any: all processes of a distributed run must stop at the same
    step (one leaving the loop alone would leave the others waiting in the next gradient all-reduce)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    flags = torch.tensor([int(flag)], device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return bool(flags.item())


class StopOnInterrupt(TrainerCallback):
    """The first Ctrl-C ends training after the current step with a checkpoint; a second one stops at once."""

    def __init__(self):
        self.interrupted = False
        self.previous_handler = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.previous_handler = signal.signal(signal.SIGINT, self.request_stop)

    def request_stop(self, signum, frame):
        self.interrupted = True
        signal.signal(signal.SIGINT, self.previous_handler)
        print("\nInterrupted: saving a checkpoint after this step (Ctrl-C again to stop at once)", file=sys.stderr)

    def on_step_end(self, args, state, control, **kwargs):
        self.interrupted = on_any_process(self.interrupted, args.device)  # Ctrl-C reaches the processes at any step
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        self.restore_handler()

    def restore_handler(self) -> None:
        """Give Ctrl-C back to the handler it had before training (also when training ended with an exception)."""
        if self.previous_handler is not None:
            signal.signal(signal.SIGINT, self.previous_handler)
            self.previous_handler = None


class StopAfterTime(TrainerCallback):
    """Ends training once `limit_s` seconds have passed, with an evaluation and a checkpoint at that step."""

    clock = staticmethod(time.perf_counter)

    def __init__(self, limit_s: float):
        self.limit_s = limit_s
        self.started = None
        self.stopped_at_step = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        out_of_time = on_any_process(self.clock() - self.started >= self.limit_s, args.device)
        if out_of_time and state.global_step < state.max_steps:
            self.stopped_at_step = state.global_step
            control.should_evaluate = args.eval_strategy != "no"
            control.should_save = True
            control.should_training_stop = True


__all__ = ["ScheduledSamplingCallback", "StopAfterTime", "StopOnInterrupt"]
