"""Startup: seconds from `simple-s2s-translate MODEL "sentence"` to its first translation, and where they go.

Each round starts fresh interpreters, in turn: one that only imports torch (the floor no torch program goes below),
and the CLI's own code with a clock at each phase: the imports (torch, then transformers' model stack, then this
package), loading the saved folder, translating one sentence. The model is the `full` preset's shape with random
weights (vocab 8000, emb 256, hidden 512), saved with a tokenizer and a generation config of beam 5, 30 new tokens
(random weights never end a sentence early, so this is the longest such first translation).

    python -m benchmarks.bench_startup [--quick] [--repeats 5] [--threads 2]
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness

# The CLI's main() with a clock between its phases; the imports are those of hf_simple_s2s.inference.translate.
PHASES = """
import json, time
clock = [(time.perf_counter(), time.process_time())]
import torch
clock.append((time.perf_counter(), time.process_time()))
import transformers.modeling_utils, transformers.generation, transformers.models.auto.modeling_auto
import transformers.models.auto.tokenization_auto
clock.append((time.perf_counter(), time.process_time()))
from hf_simple_s2s.inference.translate import load_translator, translate
clock.append((time.perf_counter(), time.process_time()))
torch.set_num_threads({threads})
model, tokenizer = load_translator({folder!r})
clock.append((time.perf_counter(), time.process_time()))
translation = translate(["Ein Hund läuft über die Wiese."], model, tokenizer)
clock.append((time.perf_counter(), time.process_time()))
names = ("import torch", "import transformers' model stack", "import hf_simple_s2s", "load the folder", "translate")
print("PHASES" + json.dumps({{n: (b[0] - a[0], b[1] - a[1]) for n, a, b in zip(names, clock, clock[1:])}}))
"""
PHASE_NAMES = (
    "import torch",
    "import transformers' model stack",
    "import hf_simple_s2s",
    "load the folder",
    "translate",
)


def save_model_folder(setting: harness.Setting, folder: Path) -> Path:
    from hf_simple_s2s.data import MULTI30K_DIR, read_lines
    from hf_simple_s2s.tokenization import train_tokenizer

    model = harness.build_model(setting, "bahdanau", "cpu")
    model.generation_config.num_beams, model.generation_config.max_new_tokens = 5, setting.new_tokens
    model.generation_config.early_stopping = True
    model.save_pretrained(folder)
    sentences = read_lines(MULTI30K_DIR / "train.de.gz")[:3000] + read_lines(MULTI30K_DIR / "train.en.gz")[:3000]
    tokenizer = train_tokenizer(sentences, vocab_size=min(setting.vocab_size, 4000))
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    return folder


def run_child(code: str, threads: int) -> tuple[float, float, str]:
    """Wall and CPU seconds of a fresh `python -c code` (interpreter start included), and what it printed."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    before = os.times()
    wall = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - wall
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, result.stdout


def main(argv=None) -> dict:
    parser = harness.argument_parser(__doc__)
    args = harness.parse_args(parser, argv, repeats=5)
    runs = {"python + import torch": "import torch", "CLI to its first translation": None}
    timings = harness.Timings(runs)
    phases = {name: {"wall": [], "cpu": []} for name in PHASE_NAMES}
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model_folder(args.setting, Path(tmp) / "model")
        runs["CLI to its first translation"] = PHASES.format(threads=args.threads, folder=str(folder))
        for round_number in range(args.repeats + 1):  # the first round warms the file cache, untimed
            for name, code in runs.items():
                wall, cpu, printed = run_child(code, args.threads)
                if round_number == 0:
                    continue
                timings[name].append(wall)
                timings.cpu[name].append(cpu)
                if "PHASES" in printed:
                    for phase, (phase_wall, phase_cpu) in json.loads(printed.split("PHASES", 1)[1]).items():
                        phases[phase]["wall"].append(phase_wall)
                        phases[phase]["cpu"].append(phase_cpu)
    cli, floor = "CLI to its first translation", "python + import torch"
    median_phases = {name: harness.medians(values) for name, values in phases.items()}
    results = {
        "seconds": {"wall": harness.medians(timings), "cpu": harness.medians(timings.cpu)},
        "phases_median_seconds": median_phases,
        "cli_over_import_torch": harness.ratios(timings, cli, floor),
        **harness.rounds(timings),
        "phases_seconds": phases,
    }
    targets = [
        harness.target("first translation (s, wall)", "full shape, beam 5", harness.medians(timings)[cli], "<= 2.0"),
        harness.target("first translation (s, CPU)", "full shape, beam 5", harness.medians(timings.cpu)[cli]),
        harness.target("CLI / python + import torch", "full shape, beam 5", results["cli_over_import_torch"]),
    ]
    targets += [
        harness.target(f"phase: {name} (s, CPU)", "median", median_phases[name]["cpu"]) for name in PHASE_NAMES
    ]
    print(json.dumps(median_phases, indent=1))
    return harness.finish("bench_startup", args, results, targets)


if __name__ == "__main__":
    main()
