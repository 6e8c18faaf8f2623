#!/usr/bin/env bash
# One-time (and idempotent) set-up of a machine for dispatch-rl: a virtualenv outside the
# checkout, so torch (a ~3.5 GB CUDA build from PyPI, run on the CPU) is installed once per
# machine and reused by every clone and CI run; then the project itself, editable.
#   DISPATCH_RL_VENV  where the virtualenv lives (default ~/.cache/dispatch-rl/venv)
#   WITH_TEST_TOOLS=1 also install what the tests need outside Python (kcat, chromium,
#                     chromium-driver, postgresql; from Debian)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${DISPATCH_RL_VENV:-$HOME/.cache/dispatch-rl/venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_PIN=$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
# torch first and alone: skipped when the pinned version is already there (pip's cache
# serves it otherwise, so a reinstall does not download it again).
# (captured first: `pip show | grep -q` fails under pipefail when grep exits early)
installed=$("$VENV/bin/pip" show torch 2>/dev/null || true)
if ! grep -q "^Version: ${TORCH_PIN#torch==}" <<<"$installed"; then
  echo "== installing $TORCH_PIN (large; cached by pip after the first time)"
  "$VENV/bin/pip" install -q "$TORCH_PIN"
fi
echo "== installing dispatch-rl (editable) with the dev and train extras"
# setuptools' editable build is chatty on success; show its output only when it fails
# within constraints.txt: the versions the suite last passed with (a fresh machine would
# otherwise get whatever was released since, and measure something else)
if ! out=$("$VENV/bin/pip" install -q -c constraints.txt -e '.[dev]' 2>&1); then
  echo "$out" >&2
  echo "set-up failed: pip could not install the project" >&2
  exit 1
fi
"$VENV/bin/python" -c "import optimizer, streams, schemas, torch, faust" \
  || { echo "set-up failed: the project does not import" >&2; exit 1; }
# The pass's compiled loops (optimizer/_kernels.c) are optional: without a C compiler the
# install goes on and the Python code runs (same decisions, slower). Say so, once.
"$VENV/bin/python" -c "import optimizer._kernels" 2>/dev/null \
  || echo "warning: optimizer/_kernels.c did not build (no C compiler or Python headers?);" \
    "the pass runs its pure-Python code" >&2

command -v java >/dev/null || echo "warning: java (17+) is needed for the local Kafka broker" >&2
command -v mvn >/dev/null || echo "warning: maven is needed once to fetch the Kafka jars" >&2
# Test tools from Debian: kcat (interop client), chromium + chromedriver (dashboard browser
# test), postgresql (the audit store's PostgreSQL tests). apt-get update once, only if needed.
if [ "${WITH_TEST_TOOLS:-0}" = 1 ]; then
  missing=()
  command -v kcat >/dev/null || missing+=(kcat)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing test tools from Debian: ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    ($SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
      || ($SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null)) \
      || echo "warning: could not install ${missing[*]}; the tests that need them say why" >&2
  fi
fi
echo "== ready: $VENV"
