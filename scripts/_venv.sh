# Sourced by scripts/run, scripts/demo and scripts/test: defines rasd_env, which
# makes a virtualenv holding exactly the pinned set of a lock file plus rasd.
# It reads no arguments: a sourced file sees its caller's, e.g. `--once`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: rasd needs Python 3.11 or newer (tried: $PYTHON; set PYTHON=...)" >&2
  exit 1
fi

# The oldest pip that installs rasd correctly: older ones drop dependencies
# requested through an extra whose name is spelled differently (lxml[html_clean]).
RASD_MIN_PIP="23.3"

# rasd_pip_ok PYTHON: is that interpreter's pip at least RASD_MIN_PIP?
rasd_pip_ok() {
  "$1" - "$RASD_MIN_PIP" <<'PY'
import sys
import pip

def key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".")[:2])

sys.exit(key(pip.__version__) < key(sys.argv[1]))
PY
}

# rasd_env DIR editable|package LOCK...: make DIR a virtualenv with exactly the
# pins of the LOCK files (hashes checked, nothing resolved) and rasd itself,
# editable or as a built package (as the Dockerfile does). Reinstalls only
# when pyproject.toml or a lock changed.
rasd_env() {
  local dir="$1" mode="$2"
  shift 2
  local stamp="$dir/.rasd-installed" want
  want="$(cat pyproject.toml "$@" | sha256sum | cut -c1-16)-$mode"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  if [ ! -x "$dir/bin/python" ]; then
    echo "==> creating $dir"
    "$PYTHON" -m venv "$dir"
  fi
  local py="$dir/bin/python"
  if ! rasd_pip_ok "$py"; then
    echo "==> pip in $dir is older than $RASD_MIN_PIP: upgrading it"
    "$py" -m pip install --quiet --disable-pip-version-check "pip>=$RASD_MIN_PIP"
    rasd_pip_ok "$py" || { echo "error: pip >= $RASD_MIN_PIP is needed" >&2; exit 1; }
  fi
  echo "==> installing ${*} into $dir"
  local reqs=()
  for lock in "$@"; do reqs+=(-r "$lock"); done
  # --no-deps: the lock is the whole set; a dependency it misses must fail
  # loudly below, not be fetched unpinned.
  "$py" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps "${reqs[@]}"
  if [ "$mode" = editable ]; then
    "$py" -m pip install --quiet --disable-pip-version-check --no-deps -e .
  else
    "$py" -m pip install --quiet --disable-pip-version-check --no-deps .
  fi
  echo "$want" > "$stamp"
}

# The running environment: the runtime lock only, nothing from the tests.
rasd_run_env() {
  rasd_env .venv editable requirements/runtime.txt
  export PATH="$PWD/.venv/bin:$PATH"
}
