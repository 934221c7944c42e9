#!/usr/bin/env bash
# A prepared GPU burst: continue training from the repository checkpoint for a wall-clock
# budget, write the new checkpoint under $OUT, then run the CPU-vs-CUDA bit-exactness test
# and the GPU speed benchmarks.  Falls back to the CPU when there is no GPU (local test).
#
#   benchmarks/train_gpu.sh [MINUTES=8] [DATA=<repo>/../shared/data/train]
#   env: OUT (default <repo>/out/train-gpu), PY (python), STEPS (schedule length, 200000),
#        BATCH (16), CROP (256), SPEED_SIZE (1024)
#
# Bring back $OUT/run/checkpoint.pt and continue on the CPU with
#   recodec train DATA DIR --local --resume checkpoint.pt ...
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=${1:-8}
DATA=${2:-$REPO/../shared/data/train}
OUT=${OUT:-$REPO/out/train-gpu}
PY=${PY:-python}
CKPT=$REPO/recodec/codecs/learned/train_state/hyperprior.ckpt
export PYTHONPATH=$REPO
[ -d "$DATA" ] || { echo "training data $DATA not found" >&2; exit 2; }
[ -f "$CKPT" ] || { echo "checkpoint $CKPT not found" >&2; exit 2; }
mkdir -p "$OUT/run"
"$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"

# 1. Train (bf16 autocast; checkpoint every few minutes and at the budget's end).
"$PY" -m recodec train "$DATA" "$OUT/run" --local --resume "$CKPT" --max-minutes "$MINUTES" \
    --steps "${STEPS:-200000}" --batch-size "${BATCH:-16}" --crop "${CROP:-256}" --max-eval-images 4 \
    | tee "$OUT/train.json"
tail -n 3 "$OUT/run/train_log.jsonl"

# 2. Bit-exact decoding, CPU vs CUDA (skipped without CUDA), with the shipped weights.
"$PY" -m pytest "$REPO/tests/codecs/learned/test_exactness.py" -q -p no:cacheprovider | tee "$OUT/exactness.txt"

# 3. Speed: codec encode/decode MP/s and training steps/s per setting.
"$PY" "$REPO/benchmarks/learned_speed.py" --size "${SPEED_SIZE:-1024}" --repeats 1 | tee "$OUT/learned_speed.txt"
"$PY" "$REPO/benchmarks/train_speed.py" --threads "$(nproc)" --steps 4 --rounds 1 --quality-mpix 0 \
    --out "$OUT/train_speed.json"
echo "checkpoint: $OUT/run/checkpoint.pt"
