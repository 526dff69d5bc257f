#!/usr/bin/env bash
# Ologies and Orthanc side by side with the shared dwbench harness, on the same data. Both
# servers run at once and the runs alternate (Orthanc, Ologies, Orthanc, Ologies, ...), so that
# on a machine shared with other work both meet the same load; each record keeps the load
# average before and after it. Figures: tests/bench/results/dicomweb.md; raw records:
# dicomweb.json beside it (dicomweb-tables.md is the harness's own report of them).
#
#   usage: tests/bench/dicomweb_vs_orthanc.sh [ingest|query]...   (default: ingest query)
#   env:   DATA (/tmp/dwdata), OUT (tests/bench/results/dicomweb.json), ROUNDS (3),
#          WORKERS (Ologies web worker processes, 2)
#
# Orthanc 1.10.1 + DICOMweb 1.7 (Debian) from ../shared/bench/servers/orthanc, with
# TCP_NODELAY=1 (its fastest DIMSE set-up, see that folder's results), on ports 8043/4243.
# Ologies: `ologies serve --workers $WORKERS --dimse-port 11113` on port 8100 over a file store
# and SQLite in a temporary folder; an admin API key goes as HTTP Basic credentials in the base
# URL. Both are stopped by PID and their folders deleted at the end.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BENCH="${BENCH:-$(cd "$REPO/../shared/bench" && pwd)}"
PY="$REPO/.venv/bin/python"
OLOGIES="$REPO/.venv/bin/ologies"
DATA="${DATA:-/tmp/dwdata}"
OUT="${OUT:-$HERE/results/dicomweb.json}"
ROUNDS="${ROUNDS:-3}"
WORKERS="${WORKERS:-2}"
mkdir -p "$(dirname "$OUT")"
cd "$BENCH"

dw() { timeout 7200 "$PY" -m dwbench "$@"; }
log() { echo "=== $(date +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) $*"; }

O_PID=""; O_DIR=""; L_PID=""; L_DIR=""
declare -A BASE DIMSE AEC MON
start_servers() {
  local line key
  line=$(HTTP_PORT=8043 DICOM_PORT=4243 TCP_NODELAY=1 servers/orthanc/start_orthanc.sh)
  O_PID=$(sed -E 's/^PID=([0-9]+) .*/\1/' <<<"$line"); O_DIR=$(sed -E 's/.* WORKDIR=//' <<<"$line")
  BASE[Orthanc]="http://127.0.0.1:8043/dicom-web"; DIMSE[Orthanc]=4243; AEC[Orthanc]=ORTHANC; MON[Orthanc]="--server-pid $O_PID"
  L_DIR="$(mktemp -d /tmp/ologies-bench.XXXXXX)"
  export OLOGIES_STORE_URL="file://$L_DIR/store" OLOGIES_INDEX_URL="sqlite:///$L_DIR/index.sqlite3"
  export OLOGIES_ALLOW_TEST_NHS_NUMBERS=true OLOGIES_SPOOL_DIR="$L_DIR/spool"
  export OLOGIES_DIMSE_PEERS='{"BENCHSCU": {"trust": "REM"}}' OLOGIES_DIMSE_MAX_ASSOCIATIONS_PER_PEER=8
  mkdir -p "$OLOGIES_SPOOL_DIR"
  "$OLOGIES" init >/dev/null
  key="$("$OLOGIES" keys create --name bench --role admin --trust REM | tail -1)"
  "$OLOGIES" serve --port 8100 --workers "$WORKERS" --dimse-port 11113 >"$L_DIR/serve.log" 2>&1 &
  L_PID=$!
  for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:8100/healthz" && break; sleep 0.5; done
  BASE[Ologies]="http://bench:$key@127.0.0.1:8100/dicomweb"; DIMSE[Ologies]=11113; AEC[Ologies]=OLOGIES
  MON[Ologies]=""  # its work runs in worker processes: one PID would under-count it
  log "Orthanc PID $O_PID in $O_DIR; Ologies PID $L_PID in $L_DIR (workers $WORKERS)"
}
stop_servers() {
  if [ -n "$O_PID" ]; then servers/orthanc/stop_orthanc.sh "$O_PID" || true; rm -rf "$O_DIR"; O_PID=""; fi
  if [ -n "$L_PID" ]; then kill "$L_PID" 2>/dev/null || true; wait "$L_PID" 2>/dev/null || true; rm -rf "$L_DIR"; L_PID=""; fi
}
trap stop_servers EXIT

ensure_data() {
  [ -f "$DATA/camera/manifest.json" ] || dw generate --profile camera --count 20 --seed 11 --out-dir "$DATA/camera"
  [ -f "$DATA/dermatoscope/manifest.json" ] || dw generate --profile dermatoscope --count 50 --seed 12 --out-dir "$DATA/dermatoscope"
}

ingest() {
  for round in $(seq 1 "$ROUNDS"); do
    for s in Orthanc Ologies; do
      log "round $round $s ingest"
      # shellcheck disable=SC2086
      C=(--base-url "${BASE[$s]}" ${MON[$s]} --out "$OUT" --repeat 1 --label "$s" --pause 1)
      dw stow "${C[@]}" --data "$DATA/camera" --instances 100 --batch 1,10 --seed $((100 + round))
      dw stow "${C[@]}" --data "$DATA/dermatoscope" --instances 300 --batch 1,10 --seed $((200 + round))
      # shellcheck disable=SC2086
      D=(${MON[$s]} --out "$OUT" --repeat 1 --host 127.0.0.1 --port "${DIMSE[$s]}" --aec "${AEC[$s]}" --aet BENCHSCU
         --storescu-env TCP_NODELAY=1 --label "$s" --pause 1)
      dw dimse "${D[@]}" --data "$DATA/camera" --instances 100 --seed $((300 + round))
      dw dimse "${D[@]}" --data "$DATA/dermatoscope" --instances 300 --seed $((400 + round))
    done
  done
}

query() {
  for s in Orthanc Ologies; do
    log "$s fill to ~10k"
    # shellcheck disable=SC2086
    dw fill --base-url "${BASE[$s]}" ${MON[$s]} --out "$OUT" --profile dermatoscope --count 10000 --seed 1 --label "$s index 0 -> ~10k"
    dw load --base-url "${BASE[$s]}" --data "$DATA/camera"
    dw load --base-url "${BASE[$s]}" --data "$DATA/dermatoscope"
  done
  for round in $(seq 1 "$ROUNDS"); do
    for s in Orthanc Ologies; do
      log "round $round $s query"
      # shellcheck disable=SC2086
      dw qido --base-url "${BASE[$s]}" ${MON[$s]} --out "$OUT" --queries 200 --repeat 1 --seed $((500 + round)) --label "$s, index ~10k"
      # shellcheck disable=SC2086
      dw wado --base-url "${BASE[$s]}" ${MON[$s]} --out "$OUT" --manifest "$DATA/dermatoscope/manifest.json" --requests 60 --repeat 1 --seed $((600 + round)) --label "$s, dermatoscope, index ~10k"
      # shellcheck disable=SC2086
      dw wado --base-url "${BASE[$s]}" ${MON[$s]} --out "$OUT" --manifest "$DATA/camera/manifest.json" --requests 20 --repeat 1 --seed $((700 + round)) --label "$s, camera, index ~10k"
    done
  done
}

ensure_data
start_servers
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(ingest query)
for phase in "${phases[@]}"; do "$phase"; done
stop_servers
dw report "$OUT" --out "${OUT%.json}-tables.md"
log done
