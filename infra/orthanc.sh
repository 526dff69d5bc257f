#!/usr/bin/env bash
# Orthanc (Debian package) with its DICOMweb plugin, configured from env vars.
# Usage: infra/orthanc.sh start|stop|status
#
# Orthanc 1.10 has no bind-address option: it listens on all interfaces.
# RemoteAccessAllowed=false makes its HTTP server refuse any client that is not
# on this machine; the DICOM port accepts any peer (DICOM test tools use many
# calling AETs), so only run it on a machine that is not reachable from outside.
set -euo pipefail
SERVICE=orthanc
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ORTHANC_HTTP_PORT="${ORTHANC_HTTP_PORT:-8042}"
ORTHANC_DICOM_PORT="${ORTHANC_DICOM_PORT:-4242}"
ORTHANC_AET="${ORTHANC_AET:-ORTHANC}"
# Where Ologies is, as a DICOM peer (C-STORE/C-MOVE target "ologies") and as a
# DICOMweb server (STOW-RS target "ologies"), so tests can make Orthanc send to it.
export ORTHANC_OLOGIES_AET="${ORTHANC_OLOGIES_AET:-OLOGIES}"
export ORTHANC_OLOGIES_HOST="${ORTHANC_OLOGIES_HOST:-127.0.0.1}"
export ORTHANC_OLOGIES_PORT="${ORTHANC_OLOGIES_PORT:-11112}"
export ORTHANC_OLOGIES_URL="${ORTHANC_OLOGIES_URL:-http://127.0.0.1:8000/dicomweb/}"
export ORTHANC_OLOGIES_USER="${ORTHANC_OLOGIES_USER:-}"
export ORTHANC_OLOGIES_PASSWORD="${ORTHANC_OLOGIES_PASSWORD:-}"
ORTHANC_BIN=/usr/sbin/Orthanc

find_dicomweb_plugin() {
    dpkg -L orthanc-dicomweb 2>/dev/null | grep -m1 '/plugins/libOrthancDicomWeb\.so$' \
        || die "orthanc-dicomweb is not installed (run infra/install-system-deps.sh)"
}

# JSON written by Python so env values are quoted correctly.
write_config() {
    ORTHANC_AET="$ORTHANC_AET" ORTHANC_HTTP_PORT="$ORTHANC_HTTP_PORT" \
    ORTHANC_DICOM_PORT="$ORTHANC_DICOM_PORT" DATA_DIR="$DATA_DIR" PLUGIN="$1" \
    python3 - >"$RUN_DIR/orthanc.json" <<'EOF'
import json, os
e = os.environ
ologies_web = {"Url": e["ORTHANC_OLOGIES_URL"]}
if e["ORTHANC_OLOGIES_USER"]:
    ologies_web.update(Username=e["ORTHANC_OLOGIES_USER"], Password=e["ORTHANC_OLOGIES_PASSWORD"])
print(json.dumps({
    "Name": "ologies-test-orthanc",
    "StorageDirectory": e["DATA_DIR"] + "/storage",
    "IndexDirectory": e["DATA_DIR"] + "/index",
    "HttpPort": int(e["ORTHANC_HTTP_PORT"]),
    "DicomPort": int(e["ORTHANC_DICOM_PORT"]),
    "DicomAet": e["ORTHANC_AET"],
    # UTF-8, not Orthanc's default Latin-1: Welsh names (Gwenllïan, Dŵr) need it.
    "DefaultEncoding": "Utf8",
    "RemoteAccessAllowed": False,
    "AuthenticationEnabled": False,
    "Plugins": [e["PLUGIN"]],
    "DicomModalities": {
        "ologies": {"AET": e["ORTHANC_OLOGIES_AET"], "Host": e["ORTHANC_OLOGIES_HOST"],
                    "Port": int(e["ORTHANC_OLOGIES_PORT"])},
    },
    "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True,
                 "Servers": {"ologies": ologies_web}},
}, indent=2))
EOF
}

do_start() {
    [[ -x "$ORTHANC_BIN" ]] || die "Orthanc is not installed (run infra/install-system-deps.sh)"
    local plugin; plugin="$(find_dicomweb_plugin)"
    require_free_ports "$ORTHANC_HTTP_PORT" "$ORTHANC_DICOM_PORT"
    reset_run_dir
    write_config "$plugin"
    start_background "$ORTHANC_BIN" "$RUN_DIR/orthanc.json"
    wait_for_http "http://127.0.0.1:$ORTHANC_HTTP_PORT/system"
    wait_for_http "http://127.0.0.1:$ORTHANC_HTTP_PORT/dicom-web/studies"
    wait_until "DICOM port $ORTHANC_DICOM_PORT" port_in_use "$ORTHANC_DICOM_PORT"
}

print_endpoint() {
    cat <<EOF
Orthanc $("$ORTHANC_BIN" --version 2>/dev/null | head -1 | awk '{print $2}') REST: http://127.0.0.1:$ORTHANC_HTTP_PORT   DICOMweb: http://127.0.0.1:$ORTHANC_HTTP_PORT/dicom-web/
  DICOM: AET $ORTHANC_AET port $ORTHANC_DICOM_PORT (all interfaces, see header)   no auth   config: $RUN_DIR/orthanc.json
  peer "ologies": DICOM $ORTHANC_OLOGIES_AET@$ORTHANC_OLOGIES_HOST:$ORTHANC_OLOGIES_PORT, DICOMweb $ORTHANC_OLOGIES_URL
EOF
}

main "$@"
