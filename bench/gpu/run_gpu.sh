#!/usr/bin/env bash
# The GPU checks of the fine-tuning engine in one prepared run (about 11 minutes on one H200; BUDGET_S bounds step 4):
#   1. the GPU tests (tests/gpu, marked gpu) and the training unit tests, under this image's torch/transformers
#   2. bench/train_speed.py --device cuda (all recipes incl. trainer_best and bare_fused; SST-2 and BANKING77
#      lengths; token-budget batches with torch.compile; a BERT-base-sized model built from a config)
#   3. bench/accuracy.py --device cuda (SST-2 and BANKING77 on the pipeline defaults)
#   4. torch.compile test, then learning-rate experiments while time remains (evidence for the defaults)
# Installs nothing from a registry. The GPU image lacks pydantic: its wheels come carried in .gpu_carry/whl and
# go to /tmp/site. Needs nothing else beyond the image (torch, transformers, accelerate, peft, pandas, sklearn,
# pyyaml, fsspec, pytest are there; mlflow, prefect and great_expectations are neither there nor imported).
# Prepare on the CPU machine with bench/gpu/prepare_carry.sh, then run with carry [".gpu_carry"]:
#   bash bench/gpu/run_gpu.sh [MODEL_DIR] [DATA_DIR]     (defaults .gpu_carry/model .gpu_carry/data)
# Results under $OUT (default bench/out/gpu): summary.json, train_speed.json, accuracy.json,
# experiments.jsonl, pytest.log, run.log.
# A dry run of the plumbing on a CPU machine: DEVICE=cpu QUICK=1 PYTHON=/work/venv/bin/python bash bench/gpu/run_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
START=$(date +%s)
OUT="${OUT:-bench/out/gpu}"
mkdir -p "$OUT"
MODEL_DIR="$(realpath "${1:-.gpu_carry/model}")"
DATA_DIR="$(realpath "${2:-.gpu_carry/data}")"
WHEELS="${WHEELS:-.gpu_carry/whl}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
if [ -n "${QUICK:-}" ]; then  # tiny sizes: checks the script, measures nothing
  TESTS="tests/gpu"; SPEED_ARGS="--samples 256 --steps 3 --repeats 1"; ACC_ARGS="--datasets banking77 --max-train-samples 200 --epochs 1"
  EXP_ARGS="--max-train-samples 200 --epochs 1"; EXPERIMENTS="banking77:training.learning_rate=5e-5,training.head_learning_rate_factor=1"
else
  TESTS="tests/gpu tests/unit/test_training.py tests/unit/test_learning.py tests/unit/test_token_batches.py"
  SPEED_ARGS="--samples 2048 --steps 60 --repeats 5"; ACC_ARGS=""; EXP_ARGS=""
  # in order of use, while time remains: the foundation's old defaults, then neighbours of the new ones
  EXPERIMENTS="banking77:training.learning_rate=5e-5,training.head_learning_rate_factor=1
               banking77:training.head_learning_rate_factor=300
               sst2:training.learning_rate=5e-5,training.head_learning_rate_factor=1
               sst2:training.head_learning_rate_factor=300
               banking77:training.head_learning_rate_factor=30 banking77:training.epochs=5"
fi
LOG="$OUT/run.log"
exec > >(tee -a "$LOG") 2>&1
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( ${BUDGET_S:-450} - $(elapsed) )); }
stage() { echo; echo "=== [$(elapsed)s] $*"; }

export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
export PIPELINE_PACKAGED_MODEL_DIR="$MODEL_DIR" PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "from pydantic import ConfigDict, field_validator" 2>/dev/null; then  # pydantic 2 needed
  stage "pydantic from carried wheels ($WHEELS) into /tmp/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || { echo "no pydantic and no usable wheels in $WHEELS: run bench/gpu/prepare_carry.sh and carry .gpu_carry"; exit 2; }
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
stage "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, transformers, peft, pandas, pydantic; print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'pandas', pandas.__version__, 'pydantic', pydantic.__version__, 'cuda', torch.cuda.is_available())"
ls "$MODEL_DIR" "$DATA_DIR"/* >/dev/null || { echo "model or data folder missing"; exit 2; }

stage "1. GPU tests + training unit tests"
timeout -k 5 150 "$PY" -m pytest $TESTS -q -p no:cacheprovider -k "not compile" \
  -o addopts="-ra --strict-markers" 2>&1 | tee "$OUT/pytest.log" | tail -15
TESTS_RC=${PIPESTATUS[0]}

stage "2. train_speed --device $DEVICE"
timeout -k 5 120 "$PY" bench/train_speed.py --data "$DATA_DIR/sst2" $SPEED_ARGS \
  --device "$DEVICE" --model "$MODEL_DIR" --out "$OUT/train_speed.json" | tail -12
SPEED_RC=${PIPESTATUS[0]}

stage "2b. train_speed on BANKING77 lengths, token-budget batches, BERT-base from a config"
timeout -k 5 100 "$PY" bench/train_speed.py --data "$DATA_DIR/banking77" $SPEED_ARGS --skip seed_recipe \
  --device "$DEVICE" --model "$MODEL_DIR" --out "$OUT/train_speed_banking77.json" | tail -6
timeout -k 5 100 "$PY" bench/train_speed.py --data "$DATA_DIR/sst2" $SPEED_ARGS --skip seed_recipe,run_glue_default \
  --device "$DEVICE" --model "$MODEL_DIR" --pipeline-set max_batch_tokens=16384 --pipeline-set compile=true \
  --out "$OUT/train_speed_token_budget.json" | tail -6
timeout -k 5 100 "$PY" bench/train_speed.py --data "$DATA_DIR/sst2" $SPEED_ARGS --skip seed_recipe,run_glue_default \
  --device "$DEVICE" --model config:bert-base --out "$OUT/train_speed_bert_base.json" | tail -6

stage "3. accuracy --device $DEVICE (pipeline defaults)"
timeout -k 5 170 "$PY" bench/accuracy.py --data "$DATA_DIR" --device "$DEVICE" $ACC_ARGS --no-progress --out "$OUT/accuracy.json" | tail -5
ACCURACY_RC=${PIPESTATUS[0]}

stage "4a. torch.compile test"
timeout -k 5 90 "$PY" -m pytest tests/gpu -q -p no:cacheprovider -k compile -o addopts="-ra --strict-markers" 2>&1 \
  | tee -a "$OUT/pytest.log" | tail -5
COMPILE_RC=${PIPESTATUS[0]}

stage "4b. learning-rate experiments (not the defaults' result; evidence for choosing them)"
: > "$OUT/experiments.jsonl"
for spec in $EXPERIMENTS; do
  budget=$(( $(left) - 10 ))
  if [ "$budget" -lt 40 ]; then echo "skipped (time): $spec"; continue; fi
  sets=(); IFS=, read -ra pairs <<< "${spec#*:}"; for pair in "${pairs[@]}"; do sets+=(--set "$pair"); done
  timeout -k 5 "$budget" "$PY" bench/accuracy.py --data "$DATA_DIR" --datasets "${spec%%:*}" --device "$DEVICE" \
    "${sets[@]}" $EXP_ARGS --no-progress --json 2>/dev/null | tail -1 >> "$OUT/experiments.jsonl"
  echo "done: $spec"
done

stage "summary"
"$PY" - "$OUT" "$TESTS_RC" "$SPEED_RC" "$ACCURACY_RC" "$COMPILE_RC" "$(elapsed)" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None
speed, accuracy = load("train_speed.json"), load("accuracy.json")
experiments = []
for line in (out / "experiments.jsonl").read_text().splitlines() if (out / "experiments.jsonl").exists() else []:
    try:
        item = json.loads(line)
    except ValueError:
        continue
    for name, r in item["results"].items():
        experiments.append({"dataset": name, "settings": item["settings"][1:], "accuracy": r["accuracy"],
                            "macro_f1": r["macro_f1"], "wall_seconds": r["wall_seconds"], "best_epoch": r["best_epoch"]})
summary = {
    "exit_codes": dict(zip(["tests", "train_speed", "accuracy", "compile_test"], map(int, sys.argv[2:6]))),
    "wall_seconds": int(sys.argv[6]),
    "train_speed": speed and {
        "samples_per_s": speed["samples_per_s"], "ratios": speed["ratios"], "real_token_share": speed["real_token_share"],
        "model_gflops": speed["model_gflops"], "fp32_matmul_gflops": speed["matmul_gflops"],
        "bf16_matmul_gflops": speed["details"]["bf16_matmul_gflops"],
        "model_flops_share_of_790_tflops_bf16": speed["details"]["model_flops_share_of_790_tflops_bf16"],
        "peak_gpu_memory_gb": speed["details"]["peak_gpu_memory_gb"]},
    "accuracy": accuracy and {name: {k: r[k] for k in ("accuracy", "macro_f1", "meets_target", "wall_seconds",
                                                      "train_seconds", "samples_per_s", "steps", "best_epoch",
                                                      "peak_gpu_memory_gb")}
                              for name, r in accuracy["results"].items()},
    "accuracy_model_flops_share_of_790_tflops_bf16": None,
    "experiments": experiments,
}
if accuracy and speed:  # model FLOP/s of the full training runs, on real tokens
    shares = {}
    for name, r in accuracy["results"].items():
        tokens_per_sample = r.get("train_mean_tokens") or r["test_mean_tokens"]
        flops = 6 * speed["details"]["matmul_params"] * tokens_per_sample * r["samples_per_s"]
        shares[name] = flops / 790e12
    summary["accuracy_model_flops_share_of_790_tflops_bf16"] = shares
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PYEOF
echo "total $(elapsed)s"
