#!/usr/bin/env bash
# GPU readiness in under 5 minutes on a GPU machine: GPU-against-CPU parity in float32 and mixed_float16, and
# the throughput of each SSL encoder size and of a frame-CNN training step (benchmarks/gpu_check.py says what
# and how). Figures in benchmarks/results/gpu_check.json. Without a GPU: prints "no GPU available", exits 0.
#
#     bash benchmarks/gpu_check.sh [options of benchmarks/gpu_check.py]
set -euo pipefail
cd "$(dirname "$0")/.."
# TensorFlow's start-up chatter hidden; TF_CPP_MIN_LOG_LEVEL=0 shows why a GPU is not found.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
exec python benchmarks/gpu_check.py "$@"
