#!/usr/bin/env bash
# The Docker Compose CLI, for checking infra/compose.yml (`docker compose config`; no Docker
# engine is needed for that). Does nothing when `docker compose` already works; otherwise builds
# Compose from the Go module proxy (about a minute on 2 cores, cached in $OLOGIES_CACHE) and
# installs it as the docker CLI's compose plugin. Prints the command that runs it.
set -euo pipefail
SERVICE=compose
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# v5.6.0 is the newest release that builds with this machine's Go (1.26.8).
COMPOSE_VERSION="${COMPOSE_VERSION:-v5.6.0}"
BIN="$OLOGIES_CACHE/compose/$COMPOSE_VERSION/docker-compose"

if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
    echo "docker compose"
    exit 0
fi

build_compose() {
    [[ -x "$BIN" ]] && return 0
    command -v go >/dev/null || die "go is not installed: cannot build Docker Compose"
    mkdir -p "$(dirname "$BIN")"
    log "building github.com/docker/compose/v5@$COMPOSE_VERSION (first run only)"
    local build_log="$OLOGIES_CACHE/compose/build.log" source_dir
    # Built inside its own module, not with `go install pkg@version`: Compose's go.mod has
    # exclude directives, which `go install` refuses for a module that is not the main one.
    if ! source_dir=$(go mod download -json "github.com/docker/compose/v5@$COMPOSE_VERSION" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') ||
        ! (cd "$source_dir" && CGO_ENABLED=0 go build -trimpath -o "$BIN.partial" ./cmd) >"$build_log" 2>&1; then
        tail -n 40 "$build_log" >&2 || true
        rm -f "$BIN.partial"
        die "building Docker Compose $COMPOSE_VERSION failed (log: $build_log)"
    fi
    mv "$BIN.partial" "$BIN"
}

build_compose
if command -v docker >/dev/null; then
    plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    mkdir -p "$plugins"
    ln -sf "$BIN" "$plugins/docker-compose"
    docker compose version >/dev/null
    echo "docker compose"
else
    echo "$BIN"  # the plugin binary also runs on its own
fi
