#!/usr/bin/env bash
# The GPU checks of data-parallel training in one prepared run (a few minutes on a machine with N >= 2 GPUs):
#   1. tests/gpu/test_distributed_cuda.py (NCCL: N processes vs 1 GPU weights and counts; bf16 learns) and the
#      2-process gloo tests of tests/integration/test_distributed_training.py (all but the CLI one, which needs
#      mlflow and prefect)
#   2. bench/distributed_speed.py --device cuda: samples/s per process count (1, 2, 4, ... up to the GPU count)
# Prepare on the CPU machine with bench/gpu/prepare_carry.sh, then run with carry [".gpu_carry"]:
#   bash bench/gpu/run_distributed.sh [MODEL_DIR] [DATA_DIR]     (defaults .gpu_carry/model .gpu_carry/data)
# Results under $OUT (default bench/out/gpu-distributed): pytest.log, distributed_speed.json, run.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
START=$(date +%s)
OUT="${OUT:-bench/out/gpu-distributed}"
mkdir -p "$OUT"
MODEL_DIR="$(realpath "${1:-.gpu_carry/model}")"
DATA_DIR="$(realpath "${2:-.gpu_carry/data}")"
WHEELS="${WHEELS:-.gpu_carry/whl}"
PY="${PYTHON:-python3}"
LOG="$OUT/run.log"
exec > >(tee -a "$LOG") 2>&1
stage() { echo; echo "=== [$(( $(date +%s) - START ))s] $*"; }

export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
export PIPELINE_PACKAGED_MODEL_DIR="$MODEL_DIR" PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "from pydantic import ConfigDict, field_validator" 2>/dev/null; then  # pydantic 2 needed
  stage "pydantic from carried wheels ($WHEELS) into /tmp/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || { echo "no pydantic and no usable wheels in $WHEELS: run bench/gpu/prepare_carry.sh and carry .gpu_carry"; exit 2; }
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
stage "environment"
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader || true
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
echo "GPUs: $GPUS"
[ "$GPUS" -ge 2 ] || echo "fewer than 2 GPUs: the NCCL tests skip; the table has one row"

stage "1. distributed tests (NCCL on GPUs, gloo on CPU)"
timeout -k 5 300 "$PY" -m pytest tests/gpu/test_distributed_cuda.py tests/integration/test_distributed_training.py \
  -k "not pipeline_run" -q -p no:cacheprovider -o addopts="-ra --strict-markers" 2>&1 | tee "$OUT/pytest.log" | tail -15
TESTS_RC=${PIPESTATUS[0]}

stage "2. samples/s per process count"
COUNTS=1; n=2; while [ "$n" -le "$GPUS" ]; do COUNTS="$COUNTS,$n"; n=$(( n * 2 )); done
[ "$GPUS" -ge 2 ] && [ "${COUNTS##*,}" != "$GPUS" ] && COUNTS="$COUNTS,$GPUS"
timeout -k 5 240 "$PY" bench/distributed_speed.py --data "$DATA_DIR/sst2" --model "$MODEL_DIR" --device cuda \
  --processes "$COUNTS" --samples 16384 --steps 40 --batch-size 256 --repeats 3 --json | tee "$OUT/distributed_speed.out"
SPEED_RC=${PIPESTATUS[0]}
tail -1 "$OUT/distributed_speed.out" > "$OUT/distributed_speed.json"
echo "exit codes: tests $TESTS_RC, speed $SPEED_RC; total $(( $(date +%s) - START ))s"
