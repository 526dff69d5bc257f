#!/usr/bin/env bash
# Ologies and Orthanc side by side with the shared dwbench harness, on the same data, phase by
# phase (Orthanc, then Ologies), so that both meet the same machine load. The figures are in
# tests/bench/results/dicomweb.md; the raw records in dicomweb.json beside it.
#
#   usage: tests/bench/dicomweb_vs_orthanc.sh [ingest|query]...   (default: ingest query)
#   env:   DATA (/tmp/dwdata), OUT (tests/bench/results/dicomweb.json), REPEAT (3),
#          WORKERS (Ologies web worker processes, 2), ORTHANC_HTTP (8043), ORTHANC_DICOM (4243)
#
# Orthanc 1.10.1 + DICOMweb 1.7 (Debian) runs from ../shared/bench/servers/orthanc with
# TCP_NODELAY=1 (its fastest DIMSE set-up, see that folder's results); Ologies runs
# `ologies serve --workers $WORKERS --dimse-port` over a file store and SQLite in a temporary
# folder, with an admin API key sent as HTTP Basic credentials in the base URL. Each server is
# stopped by PID and its folder deleted after each phase.
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
ORTHANC_HTTP="${ORTHANC_HTTP:-8043}"
ORTHANC_DICOM="${ORTHANC_DICOM:-4243}"
OLOGIES_HTTP="${OLOGIES_HTTP:-8100}"
OLOGIES_DICOM="${OLOGIES_DICOM:-11113}"
mkdir -p "$(dirname "$OUT")"
cd "$BENCH"

dw() { timeout 7200 "$PY" -m dwbench "$@"; }
log() { echo "=== $(date +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) $*"; }

NAME=""; PID=""; WORKDIR=""; BASE=""; DIMSE_PORT=""; AEC=""; MONITOR=()
start_orthanc() {
  local line
  line=$(HTTP_PORT=$ORTHANC_HTTP DICOM_PORT=$ORTHANC_DICOM TCP_NODELAY=1 servers/orthanc/start_orthanc.sh)
  PID=$(sed -E 's/^PID=([0-9]+) .*/\1/' <<<"$line"); WORKDIR=$(sed -E 's/.* WORKDIR=//' <<<"$line")
  NAME=Orthanc; BASE="http://127.0.0.1:$ORTHANC_HTTP/dicom-web"; DIMSE_PORT=$ORTHANC_DICOM; AEC=ORTHANC
  MONITOR=(--server-pid "$PID")
  log "Orthanc PID $PID in $WORKDIR"
}
start_ologies() {
  WORKDIR="$(mktemp -d /tmp/ologies-bench.XXXXXX)"
  export OLOGIES_STORE_URL="file://$WORKDIR/store" OLOGIES_INDEX_URL="sqlite:///$WORKDIR/index.sqlite3"
  export OLOGIES_ALLOW_TEST_NHS_NUMBERS=true OLOGIES_SPOOL_DIR="$WORKDIR/spool"
  export OLOGIES_DIMSE_PEERS='{"BENCHSCU": {"trust": "REM"}}' OLOGIES_DIMSE_MAX_ASSOCIATIONS_PER_PEER=8
  mkdir -p "$OLOGIES_SPOOL_DIR"
  "$OLOGIES" init >/dev/null
  local key
  key="$("$OLOGIES" keys create --name bench --role admin --trust REM | tail -1)"
  "$OLOGIES" serve --port "$OLOGIES_HTTP" --workers "$WORKERS" --dimse-port "$OLOGIES_DICOM" >"$WORKDIR/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$OLOGIES_HTTP/healthz" && break; sleep 0.5; done
  NAME=Ologies; BASE="http://bench:$key@127.0.0.1:$OLOGIES_HTTP/dicomweb"; DIMSE_PORT=$OLOGIES_DICOM; AEC=OLOGIES
  MONITOR=()  # its work is done in worker processes: one PID would under-count it
  log "Ologies PID $PID in $WORKDIR (workers $WORKERS)"
}
stop() {
  [ -n "$PID" ] || return 0
  log "stopping $NAME $PID (storage: $(du -sh "$WORKDIR" | cut -f1))"
  if [ "$NAME" = Orthanc ]; then servers/orthanc/stop_orthanc.sh "$PID" || true; else kill "$PID"; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORKDIR"
  PID=""; WORKDIR=""
}
trap stop EXIT

ensure_data() {
  [ -f "$DATA/camera/manifest.json" ] || dw generate --profile camera --count 20 --seed 11 --out-dir "$DATA/camera"
  [ -f "$DATA/dermatoscope/manifest.json" ] || dw generate --profile dermatoscope --count 50 --seed 12 --out-dir "$DATA/dermatoscope"
}

ingest() {
  C=(--base-url "$BASE" "${MONITOR[@]}" --out "$OUT" --repeat "$REPEAT" --label "$NAME")
  log "$NAME STOW-RS"
  dw stow "${C[@]}" --data "$DATA/camera" --instances 100 --batch 1,10 --seed 21
  dw stow "${C[@]}" --data "$DATA/dermatoscope" --instances 300 --batch 1,10 --seed 22
  D=("${MONITOR[@]}" --out "$OUT" --repeat "$REPEAT" --host 127.0.0.1 --port "$DIMSE_PORT" --aec "$AEC" --aet BENCHSCU
     --storescu-env TCP_NODELAY=1 --label "$NAME")
  log "$NAME DIMSE C-STORE"
  dw dimse "${D[@]}" --data "$DATA/camera" --instances 100 --seed 31
  dw dimse "${D[@]}" --data "$DATA/dermatoscope" --instances 300 --seed 32
}

query() {
  F=(--base-url "$BASE" "${MONITOR[@]}" --out "$OUT" --profile dermatoscope)
  log "$NAME fill to ~1k"
  dw fill "${F[@]}" --count 1000 --seed 1 --label "$NAME index 0 -> ~1k"
  dw qido --base-url "$BASE" "${MONITOR[@]}" --out "$OUT" --queries 200 --repeat "$REPEAT" --label "$NAME, index ~1k"
  log "$NAME fill to ~10k"
  dw fill "${F[@]}" --count 9000 --seed 2 --label "$NAME index ~1k -> ~10k"
  dw qido --base-url "$BASE" "${MONITOR[@]}" --out "$OUT" --queries 200 --repeat "$REPEAT" --label "$NAME, index ~10k"
  dw load --base-url "$BASE" --data "$DATA/camera"
  dw load --base-url "$BASE" --data "$DATA/dermatoscope"
  log "$NAME WADO-RS"
  dw wado --base-url "$BASE" "${MONITOR[@]}" --out "$OUT" --manifest "$DATA/dermatoscope/manifest.json" --requests 60 --repeat "$REPEAT" --label "$NAME, dermatoscope, index ~10k"
  dw wado --base-url "$BASE" "${MONITOR[@]}" --out "$OUT" --manifest "$DATA/camera/manifest.json" --requests 20 --repeat "$REPEAT" --label "$NAME, camera, index ~10k"
}

ensure_data
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(ingest query)
for phase in "${phases[@]}"; do
  for server in orthanc ologies; do
    "start_$server"
    "$phase"
    stop
  done
done
dw report "$OUT" --out "${OUT%.json}-tables.md"
log done
