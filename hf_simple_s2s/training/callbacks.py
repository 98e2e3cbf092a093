"""Scheduled sampling (Bengio et al. 2015) inside `Seq2SeqTrainer`: the teacher forcing ratio follows the step."""

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


__all__ = ["ScheduledSamplingCallback"]
