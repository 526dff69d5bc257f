#!/usr/bin/env bash
# Create .venv and install Ologies with every extra and the test tools, then build the
# pages' assets (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[all,test]'
# The pages' NHS.UK frontend assets (npm; copied into web/static/vendor, git-ignored).
bash infra/build-assets.sh
