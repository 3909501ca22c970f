#!/usr/bin/env bash
# One prepared GPU check (issue 12, goal 6): pre-training samples/s and bf16 MFU at paper
# width, whole-volume segmentation on CUDA against MONAI on the same card, and the test
# suite's CUDA-marked tests. Every figure is printed under the card's name.
#
#   bench/gpu_check.sh            on a machine with a CUDA GPU (about 5-8 minutes)
#   bench/gpu_check.sh --dry-run  the same steps on the CPU at toy sizes (what the tests run)
#
# PYTHON picks the interpreter (default: .venv/bin/python, else python3). Exit status: the
# first failing step's.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1

if [ "$DRY" = 1 ]; then
  DEVICE=cpu
  CARD="dry run on CPU: $(uname -m), $(getconf _NPROCESSORS_ONLN) cores"
  PRETRAIN=(--device cpu --widths 8 --steps 1 --warmup 0 --threads 1 --data-batches 2 --data-quick)
  SEGMENT=(--device cpu --width-divisor 8 --runs ours --threads 1)
  TESTS=(--collect-only -q)
else
  DEVICE=cuda
  CARD="$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0))')" || {
    echo "gpu_check: no CUDA device visible to torch (use --dry-run on a CPU)" >&2; exit 2; }
  PRETRAIN=(--device cuda --widths 1 4 --steps 20 --paper-steps 20 --warmup 3)
  SEGMENT=(--device cuda --width-divisor 1 --runs monai ours fast)
  TESTS=(-q)
fi

step() { echo; echo "== [$CARD] $1"; }
step "pre-training bench (samples/s, bf16 MFU)"
"$PYTHON" bench/bench_pretrain.py "${PRETRAIN[@]}"
step "segmentation bench (seconds per BraTS volume, ratio against MONAI on $DEVICE)"
"$PYTHON" bench/bench_segment.py "${SEGMENT[@]}" ${SEGMENT_IMAGE:+--image "$SEGMENT_IMAGE"}
step "CUDA-marked tests"
set +e
"$PYTHON" -m pytest Testing -m cuda "${TESTS[@]}"
status=$?
set -e
[ "$status" = 5 ] && { echo "no CUDA-marked tests collected"; status=0; }
echo; echo "== [$CARD] gpu_check done (status $status)"
exit "$status"
