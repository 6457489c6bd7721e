#!/usr/bin/env bash
# Reproduces the paper's tables on the demo corpus (default) or on a real ExVo corpus.
#
#   bash run_all.sh                      # demo corpus, generated into data/demo
#   bash run_all.sh --data /path/to/exvo # a real ExVo Multi-Task folder (data_info.csv + wav/)
#
# Options: --data DIR, --work DIR (stores, networks and runs, default work/), --results DIR (default results/),
#          --seeds N (default 5), --profile paper|demo (frame-CNN settings; default demo on the demo corpus,
#          paper otherwise), --list SOURCE=CSV and --weights NETWORK=FILE (out-of-domain networks, repeatable),
#          --ssl-dir DIR (wavlm-large/, hubert-large-ll60k/, wav2vec2-base/; default: random-init demo encoders),
#          --imagenet-weights FILE (VGG16 ImageNet weights for the DeepSpectrum rows; without it they say "not run"),
#          --saved-models DIR (where the best system on Val is exported, default saved_models/).
# Every stage skips what is already complete, so rerunning after an interruption picks up where it stopped.
# Creates .venv/ on first use unless a virtual environment is active.
set -euo pipefail
cd "$(dirname "$0")"

DATA=""
WORK=work
RESULTS=results
SEEDS=()
PROFILE=""
OOD=()
SSL=()
IMAGENET=""
MODELS=saved_models
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --results) RESULTS="$2"; shift 2 ;;
    --seeds) SEEDS=(--seeds "$2"); shift 2 ;;
    --profile) PROFILE="$2"; shift 2 ;;
    --list|--weights) OOD+=("$1" "$2"); shift 2 ;;
    --ssl-dir) SSL=(--ssl-dir "$2"); shift 2 ;;
    --imagenet-weights) IMAGENET="$2"; shift 2 ;;
    --saved-models) MODELS="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

source scripts/setup_env.sh
exvo() { echo "+ exvo_keras $*" >&2; python -m exvo_keras "$@"; }

if [ -z "$DATA" ]; then
  DATA=data/demo
  WORK="$WORK/demo"
  PROFILE="${PROFILE:-demo}"
  exvo make-demo "$DATA"
fi
PROFILE="${PROFILE:-paper}"
# The package's registry names the networks, those whose embeddings the tables read, and the SSL feature sets
# (single words, so the lists expand unquoted below).
NETWORKS=$(python -m exvo_keras list networks)
EMBEDDINGS=$(python -m exvo_keras list embedded-networks)
SSL_SETS=$(python -m exvo_keras list ssl-feature-sets)

exvo check-corpus "$DATA"
exvo extract-compare --data "$DATA" --work "$WORK"
exvo train-network $NETWORKS --data "$DATA" --work "$WORK" --profile "$PROFILE" ${OOD[@]+"${OOD[@]}"}
exvo extract-network $EMBEDDINGS --data "$DATA" --work "$WORK"
exvo extract-ssl $SSL_SETS --data "$DATA" --work "$WORK" ${SSL[@]+"${SSL[@]}"}
if [ -n "$IMAGENET" ]; then
  exvo extract-deepspectrum --imagenet-weights "$IMAGENET" --data "$DATA" --work "$WORK"
fi
exvo train --table 2 --data "$DATA" --work "$WORK" ${SEEDS[@]+"${SEEDS[@]}"}
exvo train --table 3 --data "$DATA" --work "$WORK" ${SEEDS[@]+"${SEEDS[@]}"}
# Beyond the paper: a Sys-1 head on each SSL layer in turn, from the stores' every-layer embeddings.
exvo layer-sweep $SSL_SETS --data "$DATA" --work "$WORK" --out "$RESULTS"
exvo report --table all --data "$DATA" --work "$WORK" --out "$RESULTS"
# The best exportable system on Val as one SavedModel, then the Test split predicted through it.
exvo export best "$MODELS/best" --work "$WORK" --data "$DATA" --overwrite ${SSL[@]+"${SSL[@]}"}
exvo predict "$MODELS/best" --data "$DATA" --split Test --out "$RESULTS/predictions_test.csv"
exvo figure2 --work "$WORK" --out "$RESULTS/figure2.png"

echo "run_all.sh finished in ${SECONDS} s; tables in $RESULTS/" >&2
