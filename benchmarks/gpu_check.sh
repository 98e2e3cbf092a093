#!/usr/bin/env bash
# One GPU check, under 10 minutes on one H100-class GPU, every result under one folder:
#   1. the environment (nvidia-smi, versions), 2. the test suite with CUDA as torch's default device,
#   3. the speed and memory benchmarks on CUDA, 4. the full Multi30k training + evaluation.
#
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]            # on a CUDA machine (default RESULTS_DIR: gpu_results/<date>)
#   bash benchmarks/gpu_check.sh --dry-run [RESULTS_DIR]  # here, on CPU: same steps, tiny sizes (checks the script)
#   bash benchmarks/gpu_check.sh --download-wheels        # here, with PyPI: wheels for a GPU machine without network
#
# What it installs: torch must already see CUDA (GPU images ship it; elsewhere `pip install torch==2.13.0`, which the
# script tries only when torch is missing). The package's other needs (transformers>=5.24, datasets, evaluate, ...)
# come from wheels in .whl/ when that folder exists (made by --download-wheels; the lent GPU machines have no
# network), else from PyPI with `pip install -e .[dev]`. Each step's log and exit status land in RESULTS_DIR; a failed
# step is recorded and the next one still runs. Environment: PYTHON (default python3), MULTI30K_ARGS (extra
# arguments for the training run), STEP_TIMEOUT_S (per benchmark, default 90), BUDGET_S (the whole script, default
# 570: the training gets what the earlier steps left of it).
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=gpu
if [[ "${1:-}" == "--dry-run" ]]; then MODE=dry-run; shift; fi
if [[ "${1:-}" == "--download-wheels" ]]; then MODE=download-wheels; shift; fi
if [[ -x .venv/bin/python ]]; then PYTHON=${PYTHON:-.venv/bin/python}; else PYTHON=${PYTHON:-python3}; fi
WHEELS=.whl
# What the GPU image lacks or has too old (its torch, numpy, pyarrow, pandas, tokenizers... are used as they are).
WHEEL_PINS=(transformers==5.24.0 datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19 huggingface_hub==1.33.0)

if [[ $MODE == download-wheels ]]; then
    mkdir -p "$WHEELS"
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d "$WHEELS" "${WHEEL_PINS[@]}"
    echo "wheels in $WHEELS/; carry it to the GPU machine (device run: carry [\".whl\"])"
    exit 0
fi

SCRIPT_START=$(date +%s)
if [[ $MODE == gpu ]]; then BUDGET_S=${BUDGET_S:-570} STEP_TIMEOUT_S=${STEP_TIMEOUT_S:-90}; fi
BUDGET_S=${BUDGET_S:-3600} STEP_TIMEOUT_S=${STEP_TIMEOUT_S:-900}  # the dry run, on a slow shared CPU
RESULTS=${1:-gpu_results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
SUMMARY="$RESULTS/summary.txt"
: >"$SUMMARY"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"

# step NAME TIMEOUT_S COMMAND...: runs it with its output in NAME.log and one line in summary.txt.
step() {
    local name=$1 limit=$2 start status
    shift 2
    start=$(date +%s)
    echo "== $name: $*"
    timeout "$limit" "$@" >"$RESULTS/$name.log" 2>&1
    status=$?
    echo "$name exit=$status seconds=$(($(date +%s) - start))" | tee -a "$SUMMARY"
    tail -n 25 "$RESULTS/$name.log"
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
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$WHEELS"/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
    elif ! "$PYTHON" -c "import transformers, datasets, evaluate, sacrebleu, hf_simple_s2s" 2>/dev/null; then
        "$PYTHON" -m pip install -q -e ".[dev]" || echo "pip install -e .[dev] failed (no network? use --download-wheels)" >>"$SUMMARY"
    fi
    DEVICE=cuda QUICK=() PRESET=(--preset full)
else
    DEVICE=cpu QUICK=(--quick --repeats 2)
    PRESET=(--preset tiny --max_train_samples 64 --max_eval_samples 16 --num_train_epochs 1 --eval_steps 2 --save_steps 2)
fi
"$PYTHON" - >"$RESULTS/environment.json" <<'PY'
import json, platform, torch, transformers
info = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
print(json.dumps(info, indent=2))
PY
cat "$RESULTS/environment.json"

# 2. The test suite, with CUDA as the default device of every tensor and model the tests make.
if [[ $MODE == gpu ]]; then
    step tests 120 "$PYTHON" -m pytest -q -p benchmarks.cuda_default_device tests
else
    step tests 600 "$PYTHON" -m pytest -q -x tests/test_benchmarks.py
fi

# 3. Speed and memory benchmarks (JSON copies under RESULTS).
for bench in bench_generate bench_train bench_memory; do
    step "$bench" "$STEP_TIMEOUT_S" "$PYTHON" -m "benchmarks.$bench" --device "$DEVICE" "${QUICK[@]}" \
        --output "$RESULTS/$bench.json"
done

# 4. Multi30k: train, evaluate (greedy and beam; BLEU, chrF), save.
if [[ -f examples/train_multi30k.py ]]; then
    # shellcheck disable=SC2086  # MULTI30K_ARGS is a list of extra arguments
    step multi30k $((SCRIPT_START + BUDGET_S - $(date +%s))) "$PYTHON" examples/train_multi30k.py "${PRESET[@]}" --output_dir "$RESULTS/multi30k" \
        ${MULTI30K_ARGS:-}
    cp "$RESULTS/multi30k/metrics.json" "$RESULTS/multi30k_metrics.json" 2>/dev/null
    rm -rf "$RESULTS"/multi30k/checkpoint-*  # keep the final model and metrics, not the intermediate checkpoints
else
    echo "multi30k skipped: examples/train_multi30k.py is not in this checkout" | tee -a "$SUMMARY"
fi

echo "== summary ($RESULTS)"
cat "$SUMMARY"
