#!/usr/bin/env bash
# One entry point for newcomers and CI.
#   ./sar.sh setup   create .venv and install SARCore with its test tools (CPU torch)
#   ./sar.sh demo    setup, then the main job end to end on the shipped scans (../shared/data)
#   ./sar.sh study   setup, then the CPU study (experiments/cpu_brats.yaml, under an hour)
#   ./sar.sh test    setup, then the whole test suite
#   ./sar.sh bench   setup, then every benchmark in bench/ (long; not part of the tests)
#   ./sar.sh VERB    any `sar` verb with the .venv's Python, e.g. ./sar.sh info MODEL
#                    (verbs: preprocess cubes preview pretrain info finetune segment
#                    evaluate experiment; ./sar.sh VERB --help for its options)
# GPU users: install the torch build for your CUDA first (pip install torch), then
# run with SAR_TORCH=skip so setup keeps it.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${SAR_VENV:-.venv}
PY="$VENV/bin/python"
DATA=${SAR_DATA:-../shared/data}

setup() {
  if [ ! -x "$PY" ]; then python3 -m venv "$VENV"; fi
  if [ "${SAR_TORCH:-cpu}" != "skip" ] && ! "$PY" -c "import torch" 2>/dev/null; then
    # The pinned CPU build first, so nothing below pulls a multi-GB CUDA build.
    "$PY" -m pip install --quiet "torch==2.13.0"
  fi
  "$PY" -m pip install --quiet -e ".[test]"
}

case "${1:-help}" in
  setup) setup ;;
  demo)
    setup
    shift
    "$PY" -m SARCore experiment experiments/mini.yaml --data-root "$DATA" --out "${SAR_DEMO_OUT:-demo_output}" "$@"
    echo "Report: ${SAR_DEMO_OUT:-demo_output}/report.md"
    ;;
  study)
    setup
    shift
    "$PY" -m SARCore experiment experiments/cpu_brats.yaml --data-root "$DATA" --out "${SAR_STUDY_OUT:-study_output}" "$@"
    echo "Report: ${SAR_STUDY_OUT:-study_output}/report.md"
    ;;
  test)
    setup
    shift
    SAR_DATA="$DATA" "$PY" -m pytest Testing -q "$@"
    ;;
  bench)
    setup
    for script in bench/bench_*.py; do echo "== $script"; "$PY" "$script"; done
    ;;
  help|-h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' ;;
  preprocess|cubes|preview|pretrain|info|finetune|segment|evaluate|experiment)
    if [ ! -x "$PY" ]; then
      echo "error: $VENV does not exist yet: run ./sar.sh setup first (about 3 GB, a few minutes)" >&2
      exit 2
    fi
    exec "$PY" -m SARCore "$@"
    ;;
  *)
    echo "error: unknown command '$1'" >&2
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
