"""Before/after for a change to the model code: `generate()` with the model files of a git revision against the
working tree's, same weights, same inputs, timed in alternation (greedy and beam 5, 30 new tokens, EOS banned).

The two must also choose the same tokens: a speed-up may not change outputs.

    python -m benchmarks.ab_generate [--rev main] [--quick] [--threads 2] [--repeats N]
"""

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.bench_generate import NUM_BEAMS, generate_call
from benchmarks.common import (
    ATTENTION_TYPES,
    ESTIMATORS,
    build_model,
    interleaved_times,
    parse_args,
    print_table,
    random_ids,
    ratios,
    rounds,
    write_results,
)


def model_class_at_revision(revision: str) -> type:
    """Imports the model files of `revision` as a separate package (without registering Auto classes)."""
    package_dir = Path(tempfile.mkdtemp()) / "simple_s2s_at_revision"
    package_dir.mkdir()
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{revision}:hf_simple_s2s"], capture_output=True, text=True, check=True
    ).stdout.split()
    for name in [n for n in listing if n.endswith("_simple_s2s.py")]:  # the files that travel with the model
        source = subprocess.run(
            ["git", "show", f"{revision}:hf_simple_s2s/{name}"], capture_output=True, text=True, check=True
        ).stdout
        (package_dir / name).write_text(source)
    (package_dir / "__init__.py").write_text("")
    sys.path.insert(0, str(package_dir.parent))
    return importlib.import_module("simple_s2s_at_revision.modeling_simple_s2s").SimpleS2SForConditionalGeneration


def main():
    args = parse_args(__doc__.splitlines()[0], lambda parser: parser.add_argument("--rev", default="main"))
    args.repeats = args.repeats or (3 if args.quick else 7)
    setting, device = args.setting, args.device
    revision_class = model_class_at_revision(args.rev)
    input_ids = random_ids(setting.batch_size, setting.source_length, setting.vocab_size, device)
    attention_mask = torch.ones_like(input_ids)
    results, rows = {}, []
    for attention_type in ATTENTION_TYPES:
        models = {
            "revision": build_model(setting, attention_type, device, model_class=revision_class).eval(),
            "working_tree": build_model(setting, attention_type, device).eval(),
        }
        runs = {}
        for name, model in models.items():
            for num_beams in (1, NUM_BEAMS):
                runs[f"{name}_beams{num_beams}"] = lambda model=model, num_beams=num_beams: generate_call(
                    model, input_ids, attention_mask, setting.new_tokens, num_beams
                )
        outputs = {name: run() for name, run in runs.items()}
        for num_beams in (1, NUM_BEAMS):
            if not torch.equal(outputs[f"revision_beams{num_beams}"], outputs[f"working_tree_beams{num_beams}"]):
                raise AssertionError(f"{attention_type}, {num_beams} beams: the two revisions chose different tokens")
        timings = interleaved_times(runs, device, args.repeats)
        results[attention_type] = {
            f"beams{num_beams}_new_vs_old": ratios(
                timings, f"working_tree_beams{num_beams}", f"revision_beams{num_beams}"
            )
            for num_beams in (1, NUM_BEAMS)
        }
        results[attention_type]["rounds"] = rounds(timings)
        for clock in ESTIMATORS:
            rows.append(
                [attention_type, clock]
                + [results[attention_type][f"beams{num_beams}_new_vs_old"][clock] for num_beams in (1, NUM_BEAMS)]
            )
    print_table(
        f"time(working tree) / time({args.rev}) on {args.device}, {args.threads} threads, medians of {args.repeats} rounds",
        ["attention", "estimator", "greedy", "beam5"],
        rows,
    )
    print(f"wrote {write_results('ab_generate', args, {'revision': args.rev, 'attention_types': results})}")


if __name__ == "__main__":
    main()
