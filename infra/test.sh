#!/usr/bin/env bash
# The whole test suite on a fresh machine: install what the tests need (Python packages, Debian
# packages, the real servers), start the servers, run pytest, stop the servers.
# CI calls this through .ci/run; a developer runs it directly.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export OLOGIES_CACHE=${OLOGIES_CACHE:-$HOME/.cache/ologies}

bash infra/install-system-deps.sh
bash infra/setup-python.sh
PY="$ROOT/.venv/bin/python"

started=()
cleanup() {
  for svc in "${started[@]}"; do bash "infra/$svc.sh" stop >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

start() {  # a server that does not start fails the run loudly: no silent skips
  local svc=$1
  echo "== starting $svc"
  if ! bash "infra/$svc.sh" start; then
    echo "FATAL: $svc did not start" >&2
    exit 1
  fi
  started+=("$svc")
}

if [ "${OLOGIES_TEST_UNIT_ONLY:-0}" != 1 ]; then
  start seaweedfs
  start minio
  start elasticsearch
  start orthanc
  # shellcheck disable=SC1091
  source infra/test-env.sh
  echo "== docker compose (to check infra/compose.yml)"
  OLOGIES_TEST_COMPOSE=$(bash infra/install-compose.sh) || { echo "FATAL: docker compose could not be installed" >&2; exit 1; }
  export OLOGIES_TEST_COMPOSE
fi

echo "== pytest"
set +e
"$PY" -m pytest "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "FATAL: pytest collected no tests" >&2
  exit 1
fi
exit "$code"
