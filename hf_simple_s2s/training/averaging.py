"""Checkpoint averaging (as in Vaswani et al. 2017, section 6.1, and Junczys-Dowmunt et al. 2016): the element-wise
mean of the weights of the last k checkpoints of a run, or of its k best by the job's metric, saved as one ordinary
model folder.

    simple-s2s-average outputs/multi30k-full --last 5     # -> outputs/multi30k-full/training_state/averaged-last-5
    simple-s2s-average outputs/multi30k-full --best 3 --output_dir DIR --metric eval_bleu

The run folder is a run's --output_dir (its checkpoints are in its training_state/) or a folder that holds the
`checkpoint-<step>` folders itself (runs saved before training_state/ existed, a Trainer's own output_dir). The
average is saved beside the checkpoints by default, out of the run folder that is uploaded to the Hub.
"""

import argparse
import json
import os
from collections.abc import Sequence

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel

import hf_simple_s2s  # noqa: F401  (registers the model with the Auto classes)

from .checkpoints import TRAINER_STATE_NAME, checkpoints_folder, complete_checkpoints, save_pretrained_atomically


def checkpoints_by_step(output_dir: str) -> dict[int, str]:
    """{step: folder} of the complete `checkpoint-<step>` folders of a run's `output_dir` (in its training_state/)."""
    if not os.path.isdir(output_dir):
        raise ValueError(f"output_dir {output_dir!r} is not a folder")
    folders = complete_checkpoints(checkpoints_folder(output_dir))
    return {int(folder.rsplit("-", 1)[-1]): folder for folder in folders}


def select_checkpoints(
    output_dir: str, k: int, best: bool = False, metric: str = "eval_bleu", greater_is_better: bool = True
) -> list[str]:
    """The last `k` complete checkpoints of `output_dir`, or with `best` the `k` that scored best on `metric` (as
    logged in the newest checkpoint's trainer_state.json), oldest first."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"the number of checkpoints to average must be an integer >= 1, got {k!r}")
    checkpoints = checkpoints_by_step(output_dir)
    if len(checkpoints) < k:
        raise ValueError(
            f"{output_dir} holds {len(checkpoints)} complete checkpoints, fewer than the {k} to average "
            "(train with --save_total_limit >= k, or --average_checkpoints k, to keep them)"
        )
    steps = sorted(checkpoints)  # oldest first
    if best:
        with open(os.path.join(checkpoints[steps[-1]], TRAINER_STATE_NAME), encoding="utf-8") as state_file:
            scores = {
                entry["step"]: entry[metric] for entry in json.load(state_file)["log_history"] if metric in entry
            }
        unscored = [step for step in steps if step not in scores]
        if unscored:
            raise ValueError(f"no {metric!r} logged for checkpoint-{unscored[0]} in {output_dir}; pick another metric")
        steps = sorted(steps, key=lambda step: scores[step], reverse=not greater_is_better)  # best last
    return [checkpoints[step] for step in sorted(steps[-k:])]


@torch.no_grad()
def average_checkpoints(folders: Sequence[str]) -> PreTrainedModel:
    """A model (the first folder's, in eval mode) whose every floating-point tensor is the mean of the folders'
    (summed in float64, one folder loaded at a time); tied weights stay tied. The folders must hold the same
    architecture."""
    if isinstance(folders, str) or not folders:
        raise ValueError(f"`folders` must be a non-empty list of saved model folders, got {folders!r}")
    averaged = AutoModelForSeq2SeqLM.from_pretrained(folders[0])
    sums = {name: tensor.double() for name, tensor in averaged.state_dict().items() if tensor.is_floating_point()}
    for folder in folders[1:]:
        state = AutoModelForSeq2SeqLM.from_pretrained(folder).state_dict()
        if state.keys() != averaged.state_dict().keys() or any(state[n].shape != s.shape for n, s in sums.items()):
            raise ValueError(f"{folder} holds another architecture than {folders[0]}: its weights cannot be averaged")
        for name in sums:
            sums[name] += state[name].double()
    # load_state_dict copies in place: a tied tensor is written twice with the same mean and stays one tensor.
    averaged.load_state_dict({name: total / len(folders) for name, total in sums.items()}, strict=False)
    return averaged.eval()


def save_average(folders: Sequence[str], output_dir: str) -> str:
    """Average `folders` into `output_dir`, an ordinary model folder (saved atomically, with checksums), with the
    first folder's tokenizer when it has one."""
    save_pretrained_atomically(average_checkpoints(folders), output_dir)
    try:
        AutoTokenizer.from_pretrained(folders[0]).save_pretrained(output_dir)
    except (OSError, ValueError):  # a checkpoint saved without its tokenizer
        pass
    return output_dir


def average_and_keep_if_better(trainer, output_dir: str, k: int) -> dict:
    """The main job's --average_checkpoints: average the run's last `k` checkpoints into `trainer.model` if that
    scores better on the evaluation (validation) set, by the job's own metric, than the best checkpoint loaded at
    the end of training; else keep the best checkpoint. Returns what was compared."""
    folders = select_checkpoints(output_dir, k)
    best_state = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
    metric = f"eval_{trainer.args.metric_for_best_model.removeprefix('eval_')}"
    best_score = trainer.evaluate()[metric]
    trainer.model.load_state_dict(average_checkpoints(folders).state_dict())
    averaged_score = trainer.evaluate()[metric]
    better = averaged_score > best_score if trainer.args.greater_is_better else averaged_score < best_score
    if not better:
        trainer.model.load_state_dict(best_state)
    return {
        "checkpoints": [os.path.basename(folder) for folder in folders],
        "metric": metric,
        "best_checkpoint": best_score,
        "averaged": averaged_score,
        "kept": "averaged" if better else "best_checkpoint",
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="simple-s2s-average", description=__doc__.splitlines()[0])
    parser.add_argument(
        "run_dir",
        help="a training run's --output_dir (checkpoints in its training_state/), or a folder of checkpoint-<step> folders",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=int, help="average the last K checkpoints")
    which.add_argument("--best", type=int, help="average the K checkpoints with the best --metric")
    parser.add_argument("--metric", default="eval_bleu", help="logged metric that ranks checkpoints for --best")
    parser.add_argument("--lower_is_better", action="store_true", help="for --best by a loss")
    parser.add_argument("--output_dir", help="default: averaged-last-K or averaged-best-K beside the checkpoints")
    args = parser.parse_args(argv)
    k = args.last if args.last is not None else args.best
    default_name = f"averaged-{'last' if args.last else 'best'}-{k}"
    output_dir = args.output_dir or os.path.join(checkpoints_folder(args.run_dir), default_name)
    try:
        folders = select_checkpoints(args.run_dir, k, args.best is not None, args.metric, not args.lower_is_better)
        save_average(folders, output_dir)
    except (OSError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {str(error).splitlines()[0]}\n")
    print(f"{output_dir}: the mean of {', '.join(os.path.basename(folder) for folder in folders)}")


if __name__ == "__main__":
    main()


__all__ = ["average_and_keep_if_better", "average_checkpoints", "save_average", "select_checkpoints"]
