#!/usr/bin/env bash
# Runs the test suite in the project's environment (created on first use): bash run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_env.sh
exec python -m pytest "$@"
