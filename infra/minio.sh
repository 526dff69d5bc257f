#!/usr/bin/env bash
# MinIO server on 127.0.0.1, built from source with `go install` (MinIO ships
# no binaries through the registries we can reach).  Usage: infra/minio.sh start|stop|status
set -euo pipefail
SERVICE=minio
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# MinIO's RELEASE.* tags are not semver, so the Go module proxy cannot serve
# them; it serves this pseudo-version: the final commit of the (now archived)
# repository, RELEASE.2025-10-15T17-29-55Z plus a few bug fixes and doc edits.
MINIO_MODULE_VERSION="${MINIO_MODULE_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
MINIO_PORT="${MINIO_PORT:-9000}"
export MINIO_ROOT_USER="${MINIO_ROOT_USER:-ologies}"
export MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD:-ologies-secret}"
# SSE-S3 (x-amz-server-side-encryption: AES256) works on AWS, so the app may ask
# for it; MinIO needs a KMS for it, and one static test key is enough.  Set
# MINIO_KMS_SECRET_KEY= (empty) to run without SSE (such requests are refused).
MINIO_KMS_SECRET_KEY="${MINIO_KMS_SECRET_KEY-ologies-test-sse:b2xvZ2llcy10ZXN0LW9ubHktbWluaW8tc3NlLWtleSE=}"
if [[ -n "$MINIO_KMS_SECRET_KEY" ]]; then export MINIO_KMS_SECRET_KEY; else unset MINIO_KMS_SECRET_KEY; fi
MINIO_BIN_DIR="$OLOGIES_CACHE/minio/$MINIO_MODULE_VERSION/bin"
MINIO="$MINIO_BIN_DIR/minio"

build_minio() {
    [[ -x "$MINIO" ]] && return 0
    command -v go >/dev/null || die "go is not installed"
    mkdir -p "$MINIO_BIN_DIR"
    # About 3-5 minutes on 2 cores the first time; cached afterwards.  Logged
    # to the build log so a failure shows why.
    log "building minio@$MINIO_MODULE_VERSION with $(go version | cut -d' ' -f3) (first run only, a few minutes)"
    local build_log="$OLOGIES_CACHE/minio/build.log"
    if ! GOBIN="$MINIO_BIN_DIR" CGO_ENABLED=0 go install "github.com/minio/minio@$MINIO_MODULE_VERSION" >"$build_log" 2>&1; then
        tail -n 40 "$build_log" >&2
        rm -f "$MINIO"
        die "go install github.com/minio/minio@$MINIO_MODULE_VERSION failed (log: $build_log)"
    fi
}

do_start() {
    build_minio
    require_free_ports "$MINIO_PORT"
    reset_run_dir
    # No update checks (closed network) and no web console (one port less).
    export MINIO_UPDATE=off MINIO_BROWSER=off
    start_background "$MINIO" server "$DATA_DIR" --address "127.0.0.1:$MINIO_PORT"
    wait_for_http "http://127.0.0.1:$MINIO_PORT/minio/health/ready"
}

print_endpoint() {
    cat <<EOF
MinIO ($MINIO_MODULE_VERSION) S3 endpoint: http://127.0.0.1:$MINIO_PORT
  access key: $MINIO_ROOT_USER   secret key: $MINIO_ROOT_PASSWORD   region: us-east-1
  SSE-S3: $([[ -n "${MINIO_KMS_SECRET_KEY:-}" ]] && echo on || echo off)   data: $DATA_DIR
EOF
}

main "$@"
