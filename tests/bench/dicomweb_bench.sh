#!/usr/bin/env bash
# DICOMweb and DIMSE benchmarks of Ologies with the shared harness (../shared/bench, dwbench), on
# the same data and in the same way as its Orthanc baseline (results/orthanc-summary.md there).
#
#   usage: tests/bench/dicomweb_bench.sh [stow|dimse|query|all]...   (default: all)
#   env:   DATA    template data folder (default /tmp/dwdata, made by the harness if missing)
#          OUT     results JSON (default tests/bench/results/dicomweb.json)
#          REPEAT  runs per configuration (default 3)
#          WORKERS web worker processes (default 2, as `ologies serve`)
#          SPOOL   spool folder (default: a folder in the run's temporary directory)
#
# Each phase starts its own `ologies serve --dimse-port` over fresh embedded backends (file
# store, SQLite index) in a temporary folder, creates an admin API key (the harness sends it as
# HTTP Basic credentials in the URL), measures, stops the server by PID and deletes the folder.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BENCH="${BENCH:-$(cd "$REPO/../shared/bench" && pwd)}"
PY="$REPO/.venv/bin/python"
OLOGIES="$REPO/.venv/bin/ologies"
DATA="${DATA:-/tmp/dwdata}"
OUT="${OUT:-$HERE/results/dicomweb.json}"
REPEAT="${REPEAT:-3}"
WORKERS="${WORKERS:-2}"
PORT="${PORT:-8100}"
DIMSE_PORT="${DIMSE_PORT:-11113}"
mkdir -p "$(dirname "$OUT")"
cd "$BENCH"

dw() { timeout 3600 "$PY" -m dwbench "$@"; }
log() { echo "=== $(date +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) $*"; }

PID=""; WORKDIR=""; KEY=""
start() {
  WORKDIR="$(mktemp -d /tmp/ologies-bench.XXXXXX)"
  export OLOGIES_STORE_URL="file://$WORKDIR/store" OLOGIES_INDEX_URL="sqlite:///$WORKDIR/index.sqlite3"
  export OLOGIES_ALLOW_TEST_NHS_NUMBERS=true OLOGIES_SPOOL_DIR="${SPOOL:-$WORKDIR/spool}"
  export OLOGIES_DIMSE_PEERS='{"BENCHSCU": {"trust": "REM"}}' OLOGIES_DIMSE_MAX_ASSOCIATIONS_PER_PEER=8
  mkdir -p "$OLOGIES_SPOOL_DIR"
  "$OLOGIES" init >/dev/null
  KEY="$("$OLOGIES" keys create --name bench --role admin --trust REM | tail -1)"
  "$OLOGIES" serve --port "$PORT" --workers "$WORKERS" --dimse-port "$DIMSE_PORT" >"$WORKDIR/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 120); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
    sleep 0.5
  done
  BASE="http://bench:$KEY@127.0.0.1:$PORT/dicomweb"
  log "Ologies PID $PID in $WORKDIR (workers $WORKERS)"
}
stop() {
  [ -n "$PID" ] || return 0
  log "stopping Ologies $PID (storage: $(du -sh "$WORKDIR" | cut -f1))"
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$WORKDIR"
  PID=""; WORKDIR=""
}
trap stop EXIT

ensure_data() {
  [ -f "$DATA/camera/manifest.json" ] || dw generate --profile camera --count 20 --seed 11 --out-dir "$DATA/camera"
  [ -f "$DATA/dermatoscope/manifest.json" ] || dw generate --profile dermatoscope --count 50 --seed 12 --out-dir "$DATA/dermatoscope"
}

phase_stow() {
  start
  C=(--base-url "$BASE" --server-pid "$PID" --out "$OUT" --repeat "$REPEAT" --batch 1,10)
  log "STOW-RS camera"
  dw stow "${C[@]}" --data "$DATA/camera" --instances 100 --seed 21
  log "STOW-RS dermatoscope"
  dw stow "${C[@]}" --data "$DATA/dermatoscope" --instances 300 --seed 22
  stop
}

phase_dimse() {
  start
  D=(--server-pid "$PID" --out "$OUT" --repeat "$REPEAT" --host 127.0.0.1 --port "$DIMSE_PORT" --aec OLOGIES --aet BENCHSCU)
  log "DIMSE C-STORE camera"
  dw dimse "${D[@]}" --data "$DATA/camera" --instances 100 --storescu-args "-xy -R"
  log "DIMSE C-STORE dermatoscope"
  dw dimse "${D[@]}" --data "$DATA/dermatoscope" --instances 300 --storescu-args "-xy -R"
  stop
}

phase_query() {
  start
  log "fill to ~1k"
  dw fill --base-url "$BASE" --count 1000 --seed 1 --out "$OUT" --server-pid "$PID"
  dw qido --base-url "$BASE" --queries 200 --repeat "$REPEAT" --label "index ~1k" --out "$OUT" --server-pid "$PID"
  log "fill to ~10k"
  dw fill --base-url "$BASE" --count 9000 --seed 2 --out "$OUT" --server-pid "$PID"
  dw qido --base-url "$BASE" --queries 200 --repeat "$REPEAT" --label "index ~10k" --out "$OUT" --server-pid "$PID"
  dw load --base-url "$BASE" --data "$DATA/dermatoscope"
  dw load --base-url "$BASE" --data "$DATA/camera"
  dw wado --base-url "$BASE" --manifest "$DATA/dermatoscope/manifest.json" --requests 60 --repeat "$REPEAT" --label "dermatoscope, index ~10k" --out "$OUT" --server-pid "$PID"
  dw wado --base-url "$BASE" --manifest "$DATA/camera/manifest.json" --requests 20 --repeat "$REPEAT" --label "camera, index ~10k" --out "$OUT" --server-pid "$PID"
  stop
}

ensure_data
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(all)
for phase in "${phases[@]}"; do
  case "$phase" in
    stow) phase_stow ;;
    dimse) phase_dimse ;;
    query) phase_query ;;
    all) phase_stow; phase_dimse; phase_query ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
dw report "$OUT" --out "${OUT%.json}-tables.md"
