#!/usr/bin/env bash
# Reproduces the paper's tables on the demo corpus (default) or on a real ExVo corpus.
#
#   bash run_all.sh                      # demo corpus, generated into data/demo
#   bash run_all.sh --data /path/to/exvo # a real ExVo Multi-Task folder (data_info.csv + wav/)
#
# Options: --data DIR, --work DIR (stores and runs, default work/), --results DIR (default results/),
#          --seeds N (default 5). Every stage skips what is already complete, so rerunning after an
#          interruption picks up where it stopped. Creates .venv/ on first use unless a venv is active.
set -euo pipefail
cd "$(dirname "$0")"

DATA=""
WORK=work
RESULTS=results
SEEDS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --results) RESULTS="$2"; shift 2 ;;
    --seeds) SEEDS="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

source scripts/setup_env.sh
exvo() { echo "+ exvo_keras $*" >&2; python -m exvo_keras "$@"; }

if [ -z "$DATA" ]; then
  DATA=data/demo
  WORK="$WORK/demo"
  exvo make-demo "$DATA"
fi

exvo check-corpus "$DATA"
exvo extract-compare --data "$DATA" --work "$WORK"
exvo train --table 2 --data "$DATA" --work "$WORK" --seeds "$SEEDS"
exvo report --table 2 --data "$DATA" --work "$WORK" --out "$RESULTS"

echo "run_all.sh finished in ${SECONDS} s; tables in $RESULTS/" >&2
