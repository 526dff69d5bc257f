#!/usr/bin/env bash
# Debian packages the infra scripts and tests need; installs only what is
# missing, so a second run does nothing (and needs no network).
#   dcmtk                DICOM command-line tools (storescu, echoscu, img2dcm, dcmdump)
#   orthanc, orthanc-dicomweb   the Orthanc PACS + DICOMweb plugin (infra/orthanc.sh)
#   libjpeg-turbo-progs  cjpeg/djpeg/jpegtran for test images
#   chromium             headless browser tests
#   fonts-dejavu-core    a font, so rendered pages/images have text
#   unzip                unpacking Elasticsearch (infra/elasticsearch.sh)
set -euo pipefail

PACKAGES=(dcmtk orthanc orthanc-dicomweb libjpeg-turbo-progs chromium fonts-dejavu-core unzip)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "[system-deps] all installed: ${PACKAGES[*]}"
    exit 0
fi

SUDO=()
[[ $EUID -eq 0 ]] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
echo "[system-deps] installing: ${missing[*]}"
# A fresh machine may have empty package lists: update once before installing.
"${SUDO[@]}" apt-get update -qq
# Note: where an init system runs, the orthanc package starts a system Orthanc
# on 8042/4242; infra/orthanc.sh then reports those ports busy (stop that
# service or pick other ports).  In containers/CI no init system starts it.
"${SUDO[@]}" apt-get install -y -qq "${missing[@]}"
echo "[system-deps] done"
