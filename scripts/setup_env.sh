# Sourced by run_all.sh and run_tests.sh: makes sure a Python 3.11 or 3.12 environment with requirements.txt is
# active (3.11 first: it is what CI runs; TensorFlow 2.17 and tensorflow-io 0.37.1 have wheels for both).
# With no virtual environment active it creates .venv/ (or $EXVO_VENV) once and reuses it afterwards; the
# requirements are installed again only when requirements.txt changes.
_exvo_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ -z "${VIRTUAL_ENV:-}" ]; then
  _exvo_venv="${EXVO_VENV:-$_exvo_repo/.venv}"
  if [ ! -x "$_exvo_venv/bin/python" ]; then
    _exvo_py=""
    for candidate in python3.11 python3.12 python3 python; do
      if command -v "$candidate" >/dev/null 2>&1 && \
         "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' 2>/dev/null; then
        _exvo_py="$candidate"; break
      fi
    done
    if [ -z "$_exvo_py" ]; then
      echo "error: Python 3.11 or 3.12 is required (TensorFlow 2.17 + tensorflow-io 0.37.1); none found on PATH" >&2
      return 1 2>/dev/null || exit 1
    fi
    echo "creating virtual environment $_exvo_venv with $_exvo_py" >&2
    "$_exvo_py" -m venv "$_exvo_venv"
  fi
  # shellcheck disable=SC1091
  source "$_exvo_venv/bin/activate"
fi

_exvo_stamp="$VIRTUAL_ENV/.exvo-requirements.sha1"
_exvo_want="$(cat "$_exvo_repo/requirements.txt" "$_exvo_repo/pyproject.toml" | sha1sum | cut -d' ' -f1)"
if [ "$(cat "$_exvo_stamp" 2>/dev/null)" != "$_exvo_want" ]; then
  echo "installing requirements into $VIRTUAL_ENV (once; a few minutes)" >&2
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -r "$_exvo_repo/requirements.txt"
  # editable, so notebooks and scripts outside the repository root import the working tree
  python -m pip install --quiet --no-deps -e "$_exvo_repo" >/dev/null 2>&1 || \
    python -m pip install --no-deps -e "$_exvo_repo"
  python -m pip check
  echo "$_exvo_want" > "$_exvo_stamp"
fi
# TensorFlow's C++ start-up messages (CUDA plug-in registration on CPU-only machines) are noise; its real
# errors still reach us as Python exceptions.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
