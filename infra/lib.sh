# Shared helpers for the infra/*.sh service scripts. Source it, do not run it.
#
# Each service script sets SERVICE (a short name) before sourcing this file,
# then gets:
#   OLOGIES_CACHE  downloads/builds kept between runs (default ~/.cache/ologies)
#   RUN_DIR        per-service runtime folder: pid file, log, throwaway data
#   PID_FILE, LOG_FILE, DATA_DIR
# and the helpers below.

set -euo pipefail

: "${SERVICE:?set SERVICE before sourcing lib.sh}"

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$INFRA_DIR")"
VENV="${OLOGIES_VENV:-$REPO_DIR/.venv}"
OLOGIES_CACHE="${OLOGIES_CACHE:-$HOME/.cache/ologies}"
# Runtime state lives in a temp folder: data is disposable test data.
OLOGIES_RUN_DIR="${OLOGIES_RUN_DIR:-${TMPDIR:-/tmp}/ologies-infra}"
RUN_DIR="$OLOGIES_RUN_DIR/$SERVICE"
PID_FILE="$RUN_DIR/$SERVICE.pid"
LOG_FILE="$RUN_DIR/$SERVICE.log"
DATA_DIR="$RUN_DIR/data"
START_TIMEOUT="${OLOGIES_START_TIMEOUT:-120}"   # seconds to wait for readiness

log() { echo "[$SERVICE] $*" >&2; }

# Fail loudly: message, then (once this run started the server) the tail of
# its log, so CI output explains why.
SERVER_STARTED=
die() {
    {
        echo "################################################################"
        echo "[$SERVICE] FAILED: $*"
        if [[ -n "$SERVER_STARTED" && -s "$LOG_FILE" ]]; then
            echo "---- last 60 lines of $LOG_FILE ----"
            tail -n 60 "$LOG_FILE"
            echo "---- end of log ----"
        fi
        echo "################################################################"
    } >&2
    exit 1
}

is_running() {
    [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

# True if something already accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_free_ports() {
    local p
    for p in "$@"; do
        port_in_use "$p" && die "port $p on 127.0.0.1 is already in use by another process"
    done
    return 0
}

# Fresh runtime folder for a new start: old data is test data, drop it.
# With KEEP_DATA set (the `resume` command) the data of the last run is kept.
reset_run_dir() {
    if [[ -n "${KEEP_DATA:-}" ]]; then
        [[ -d "$DATA_DIR" ]] || die "nothing to resume: no data in $DATA_DIR (use start)"
        log "resuming with the data in $DATA_DIR"
        return 0
    fi
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR" "$DATA_DIR"
}

# Start "$@" in the background in its own session/process group (so stop can
# also end any children it spawns), log to LOG_FILE, record its pid.
start_background() {
    SERVER_STARTED=1
    setsid "$@" </dev/null >>"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
}

# wait_until DESCRIPTION CMD...: rerun CMD until it succeeds; die if the
# server process exits first or START_TIMEOUT passes.
wait_until() {
    local what="$1"; shift
    local deadline=$((SECONDS + START_TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        is_running || die "server process exited while waiting for: $what"
        ((SECONDS < deadline)) || die "timed out after ${START_TIMEOUT}s waiting for: $what"
        sleep 1
    done
}

# wait_for_http URL: until URL answers with a 2xx status.
wait_for_http() {
    wait_until "$1" curl -fsS --max-time 5 -o /dev/null "$1"
}

# Stop the process group started by start_background: TERM, then KILL after 30s.
stop_service() {
    if ! is_running; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    local pid; pid="$(cat "$PID_FILE")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still alive after 30s, sending KILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

# main start|resume|stop|status: dispatch to the script's do_start / print_endpoint.
# resume starts the server on the data of its last run (after a stop or a crash), as a
# restart of a real deployment would; the fault tests use it to bring a killed server back.
main() {
    case "${1:-}" in
        start|resume)
            [[ "$1" == resume ]] && KEEP_DATA=1
            if is_running; then
                log "already running (pid $(cat "$PID_FILE"))"
            else
                local t0=$SECONDS
                do_start
                log "ready in $((SECONDS - t0))s (pid $(cat "$PID_FILE"), log $LOG_FILE)"
            fi
            print_endpoint
            ;;
        stop) stop_service ;;
        status)
            if is_running; then print_endpoint; else log "not running"; exit 1; fi
            ;;
        *) echo "usage: $0 start|resume|stop|status" >&2; exit 2 ;;
    esac
}
