#!/usr/bin/env bash
# One GPU check, under 10 minutes on one H100-class GPU, every result under one folder:
#   1. the environment (nvidia-smi, versions);
#   2. the full Multi30k training + evaluation, as several variants of the `full` preset trained side by side on the
#      one GPU (each step is too small to fill it), each stopped by --max_train_minutes; meanwhile the test suite
#      runs with CUDA as torch's default device;
#   3. once the GPU is free again, the speed, memory and device benchmarks on CUDA (benchmarks/bench_*.py), in what
#      is left of the budget.
#
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]            # on a CUDA machine (default RESULTS_DIR: gpu_results/<date>)
#   bash benchmarks/gpu_check.sh --dry-run [RESULTS_DIR]  # here, on CPU: same steps, tiny sizes (checks the script)
#   bash benchmarks/gpu_check.sh --download-wheels        # here, with PyPI: wheels for a GPU machine without network
#
# What it installs: torch must already see CUDA (GPU images ship it; elsewhere `pip install torch==2.13.0`, which the
# script tries only when torch is missing). The package's other needs (transformers>=5.24, datasets, evaluate, ...)
# come from wheels in .whl/ when that folder exists (made by --download-wheels; the lent GPU machines have no
# network), else from PyPI with `pip install -e .[dev]`. Each step's log and exit status land in RESULTS_DIR; a failed
# step is recorded and the next one still runs. Environment: PYTHON (default python3), MULTI30K_VARIANTS (lines
# "name: extra arguments", default below), TRAIN_MINUTES (each variant's --max_train_minutes, default 4.5),
# TESTS_TIMEOUT_S (default 300), BUDGET_S (the whole script, default 540; the benchmarks get what the training left
# of it), STEPS (default all: "multi30k tests bench_generate bench_generate_compiled bench_generate_step_costs
# bench_train bench_memory bench_device"). Issue 14's open GPU rows alone, in one call of under 10 minutes:
#   BUDGET_S=580 TRAIN_MINUTES=2.5 MULTI30K_VARIANTS="full:" \
#   STEPS="multi30k bench_generate_compiled bench_generate_step_costs" bash benchmarks/gpu_check.sh /tmp/gpu
# On a lent device (at most 8 files come back from $OUT): run it on /tmp/gpu, then
#   tar czf $OUT/gpu_results.tgz --exclude='*.safetensors' -C /tmp gpu
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=gpu
if [[ "${1:-}" == "--dry-run" ]]; then MODE=dry-run; shift; fi
if [[ "${1:-}" == "--download-wheels" ]]; then MODE=download-wheels; shift; fi
if [[ -x .venv/bin/python ]]; then PYTHON=${PYTHON:-.venv/bin/python}; else PYTHON=${PYTHON:-python3}; fi
WHEELS=.whl
# What the GPU image lacks or has too old (its torch, numpy, pyarrow, pandas, tokenizers... are used as they are).
WHEEL_PINS=(transformers==5.24.0 datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19)
# datasets 5.2 asks for pyarrow>=24: carried apart, installed only where the machine's pyarrow is older.
PYARROW_WHEELS=.whl-pyarrow PYARROW_PIN=pyarrow==24.0.0

if [[ $MODE == download-wheels ]]; then
    mkdir -p "$WHEELS"
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d "$WHEELS" "${WHEEL_PINS[@]}"
    grep -qx "/$PYARROW_WHEELS/" .git/info/exclude || echo "/$PYARROW_WHEELS/" >>.git/info/exclude
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 -d "$PYARROW_WHEELS" "$PYARROW_PIN"
    echo "wheels in $WHEELS/ and $PYARROW_WHEELS/; carry both to the GPU machine (device run: carry [\".whl\", \"$PYARROW_WHEELS\"])"
    exit 0
fi

SCRIPT_START=$(date +%s)
if [[ $MODE == gpu ]]; then
    BUDGET_S=${BUDGET_S:-540} TRAIN_MINUTES=${TRAIN_MINUTES:-4.5}
    # Variants of the full preset trained side by side (all <= 20.5M parameters); the first is the preset itself.
    MULTI30K_VARIANTS=${MULTI30K_VARIANTS:-"full:
full_lr2e-3: --learning_rate 2e-3
full_emb512_dropout0.4: --embedding_size 512 --dropout 0.4
full_luong_general: --attention_type luong_general"}
fi
BUDGET_S=${BUDGET_S:-3600} TRAIN_MINUTES=${TRAIN_MINUTES:-1}  # the dry run, on a slow shared CPU
MULTI30K_VARIANTS=${MULTI30K_VARIANTS:-"tiny:
tiny_lr1e-3: --learning_rate 1e-3"}
RESULTS=${1:-gpu_results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
SUMMARY="$RESULTS/summary.txt"
: >"$SUMMARY"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"

STEPS=${STEPS:-multi30k tests bench_generate bench_generate_compiled bench_generate_step_costs bench_train bench_memory bench_device}  # a subset reruns only those
wants() { [[ " $STEPS " == *" $1 "* ]]; }
left_s() { echo $((SCRIPT_START + BUDGET_S - $(date +%s))); }

# step NAME TIMEOUT_S COMMAND...: runs it (for at most TIMEOUT_S and what is left of the budget) with its output in
# NAME.log and one line in summary.txt.
step() {
    local name=$1 limit=$2 start status
    shift 2
    ((limit > $(left_s) - 5)) && limit=$(($(left_s) - 5))
    if ((limit < 10)); then
        echo "$name skipped: no time left in the ${BUDGET_S} s budget" | tee -a "$SUMMARY"
        return
    fi
    start=$(date +%s)
    echo "== $name (at most ${limit} s): $*"
    timeout "$limit" "$@" >"$RESULTS/$name.log" 2>&1
    status=$?
    echo "$name exit=$status seconds=$(($(date +%s) - start))" | tee -a "$SUMMARY"
    tail -n 15 "$RESULTS/$name.log"
}

# 1. Environment and installation.
if [[ $MODE == gpu ]]; then
    nvidia-smi >"$RESULTS/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >>"$SUMMARY"
    if ! "$PYTHON" -c "import torch" 2>/dev/null; then
        "$PYTHON" -m pip install -q torch==2.13.0 || echo "torch install failed (no network?)" >>"$SUMMARY"
    fi
    if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "torch does not see CUDA: stopping" | tee -a "$SUMMARY"
        exit 1
    fi
    if [[ -d $WHEELS ]]; then
        wheels=("$WHEELS"/*.whl)
        if [[ -d $PYARROW_WHEELS ]] && ! "$PYTHON" -c "import pyarrow, sys; sys.exit(int(pyarrow.__version__.split('.')[0]) < 24)"; then
            wheels+=("$PYARROW_WHEELS"/*.whl)
        fi
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "${wheels[@]}" && export PYTHONPATH="$PYTHONPATH:/tmp/site"
    elif ! "$PYTHON" -c "import transformers, datasets, evaluate, sacrebleu, hf_simple_s2s" 2>/dev/null; then
        "$PYTHON" -m pip install -q -e ".[dev]" || echo "pip install -e .[dev] failed (no network? use --download-wheels)" >>"$SUMMARY"
    fi
    DEVICE=cuda QUICK=() PRESET=(--preset full --torch_threads 2)
else
    DEVICE=cpu QUICK=(--quick --repeats 2)
    PRESET=(--preset tiny --max_train_samples 64 --max_eval_samples 16 --max_test_samples 16 --num_train_epochs 1
        --eval_steps 2 --save_steps 2)
fi
"$PYTHON" - >"$RESULTS/environment.json" <<'PY'
import json, platform, torch, transformers, datasets, evaluate, pyarrow, tokenizers, accelerate
info = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "datasets": datasets.__version__, "evaluate": evaluate.__version__, "pyarrow": pyarrow.__version__,
        "tokenizers": tokenizers.__version__, "accelerate": accelerate.__version__, "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "cpu_count": __import__("os").cpu_count()}
print(json.dumps(info, indent=2))
PY
cat "$RESULTS/environment.json"

# 2. Multi30k: the variants train side by side in the background (train, evaluate greedy and beam on validation and
#    test with BLEU and chrF, save); each stops training after TRAIN_MINUTES and is killed if it outlives the budget.
pids=()
if ! wants multi30k; then
    echo "multi30k skipped: not in STEPS" | tee -a "$SUMMARY"
elif [[ -f examples/train_multi30k.py ]]; then
    while IFS= read -r line; do
        [[ -z $line ]] && continue
        name=${line%%:*} extra=${line#*:}
        # shellcheck disable=SC2086  # extra holds a list of arguments
        step "multi30k_$name" $(($(left_s) - 120)) "$PYTHON" examples/train_multi30k.py "${PRESET[@]}" \
            --output_dir "$RESULTS/multi30k_$name" --max_train_minutes "$TRAIN_MINUTES" --disable_tqdm true $extra &
        pids+=($!)
    done <<<"$MULTI30K_VARIANTS"
else
    echo "multi30k skipped: examples/train_multi30k.py is not in this checkout" | tee -a "$SUMMARY"
fi

# Meanwhile, the test suite with CUDA as the default device of every tensor and model the tests make.
if ! wants tests; then
    echo "tests skipped: not in STEPS" | tee -a "$SUMMARY"
elif [[ $MODE == gpu ]]; then
    # First the tests written for a device (models and inputs moved there explicitly; they must pass), then the
    # whole suite with CUDA as the default device (a sweep: tests that pin CPU objects can fail there for that alone).
    step tests_devices 120 "$PYTHON" -m pytest -q -rfEs --tb=short --junitxml "$RESULTS/tests_devices.xml" \
        tests/models/test_devices.py
    step tests "${TESTS_TIMEOUT_S:-300}" "$PYTHON" -m pytest -q -rfE --tb=short -p benchmarks.bench_device \
        --junitxml "$RESULTS/tests.xml" tests
else
    step tests_devices 300 "$PYTHON" -m pytest -q -rfEs tests/models/test_devices.py
    step tests 600 "$PYTHON" -m pytest -q -x tests/benchmarks/test_benchmarks.py
fi
for pid in "${pids[@]}"; do wait "$pid"; done

wants multi30k && "$PYTHON" - "$RESULTS" <<'PY' | tee "$RESULTS/multi30k_summary.txt"
import json, sys
from pathlib import Path
rows = {}
for metrics_file in sorted(Path(sys.argv[1]).glob("multi30k_*/metrics.json")):
    m = json.loads(metrics_file.read_text())
    variant = metrics_file.parent.name.removeprefix("multi30k_")
    rows[variant] = {"test": m["scores"]["test"], "validation": m["scores"]["validation"], "params": m["num_parameters"],
                     "train_s": m["train"].get("train_runtime"), "wall_s": m["wall_time_s"],
                     "stopped_at_step": m.get("stopped_by_time_limit_at_step"), "planned_steps": m.get("planned_steps")}
    for decoding, s in m["scores"]["test"].items():
        print(f"{variant:28} test {decoding:8} BLEU lc {s.get('bleu_lowercase', float('nan')):6.2f} cased {s['bleu']:6.2f} "
              f"chrF {s['chrf']:6.2f} | {m['num_parameters']/1e6:.1f}M params, trained {rows[variant]['train_s']} s, "
              f"stopped at {rows[variant]['stopped_at_step']} of {rows[variant]['planned_steps']} steps")
Path(sys.argv[1], "multi30k_summary.json").write_text(json.dumps(rows, indent=2) + "\n")
PY
rm -rf "$RESULTS"/multi30k_*/training_state/checkpoint-*  # keep the final models and metrics, not the intermediate checkpoints

# 3. The benchmarks, alone on the GPU, every one with the same flags (JSON copies under RESULTS). The load test of
#    bench_memory measures host memory: it runs with the test suite, not here.
bench() {
    local name=$1 limit=$2
    shift 2
    wants "$name" && step "$name" "$limit" "$PYTHON" -m "benchmarks.$name" --device "$DEVICE" "${QUICK[@]}" \
        --output "$RESULTS/$name.json" "$@"
}
bench bench_generate 120
# Issue 14's GPU rows, in one call: compiled greedy (generate()'s own compilation, CUDA graphs) and beam 5 (forward
# compiled) against the eager hand loops, compile time per bucketed source length, and sentences/s of the trained
# `full` folder on Multi30k test 2016 (batch 128, eager beside compiled); then generate()'s per-step costs.
full_folder=$(ls -d "$RESULTS"/multi30k_full 2>/dev/null)
if wants bench_generate_compiled; then
    step bench_generate_compiled 300 "$PYTHON" -m benchmarks.bench_generate --compile --device "$DEVICE" "${QUICK[@]}" \
        --repeats 3 --output "$RESULTS/bench_generate_compiled.json"
    [[ -n $full_folder ]] && step bench_generate_compiled_full 200 "$PYTHON" -m benchmarks.bench_generate --compile \
        --device "$DEVICE" --attention_types bahdanau --repeats 2 --folder "$full_folder" \
        --output "$RESULTS/bench_generate_compiled_full.json"
fi
wants bench_generate_step_costs && step bench_generate_step_costs 90 "$PYTHON" -m benchmarks.bench_generate \
    --step_costs --device "$DEVICE" "${QUICK[@]}" --output "$RESULTS/bench_generate_step_costs.json"
bench bench_train 100
bench bench_memory 150 --workloads train greedy beam5
bench bench_device 60
wants bench_device && step bench_device_deterministic 60 "$PYTHON" -m benchmarks.bench_device --device "$DEVICE" \
    "${QUICK[@]}" --deterministic --output "$RESULTS/bench_device_deterministic.json"

echo "== summary ($RESULTS)"
cat "$SUMMARY" "$RESULTS/multi30k_summary.txt" 2>/dev/null
