#!/usr/bin/env bash
# Run Ologies on the embedded default (a local folder + SQLite under ./ologies-data):
# no other services needed. Extra arguments go to `ologies serve` (e.g. --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/setup-python.sh
exec .venv/bin/ologies serve "$@"
