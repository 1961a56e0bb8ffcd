#!/usr/bin/env bash
# Print the path of a working uv, installing it from PyPI when the machine has none.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
if [ -x "$HOME/.local/bin/uv" ]; then echo "$HOME/.local/bin/uv"; exit 0; fi
PY=${PYTHON:-python3}
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >&2 && apt-get install -y -qq python3-pip >&2
  fi
fi
"$PY" -m pip install --quiet --user uv >&2 2>/dev/null \
  || "$PY" -m pip install --quiet --user --break-system-packages uv >&2 \
  || "$PY" -m pip install --quiet uv >&2
if command -v uv >/dev/null 2>&1; then command -v uv; else echo "$HOME/.local/bin/uv"; fi
