# Sourced by scripts/run and scripts/test: make .venv with rasd installed in it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: rasd needs Python 3.11 or newer (tried: $PYTHON; set PYTHON=...)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
# Reinstall only when the dependencies changed.
stamp=".venv/.rasd-installed"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)${1:-}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing rasd${1:+ with extras $1} into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${1:-}"
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
