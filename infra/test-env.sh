# Sourced (not run) by infra/test.sh once the servers are up: tells the
# integration tests where the infra/*.sh servers listen, from the same env
# vars and defaults as those scripts.  Both S3 servers use one key pair.
export OLOGIES_TEST_SEAWEEDFS_URL="http://127.0.0.1:${SEAWEEDFS_S3_PORT:-8333}"
export OLOGIES_TEST_MINIO_URL="http://127.0.0.1:${MINIO_PORT:-9000}"
export OLOGIES_TEST_S3_ACCESS_KEY="${SEAWEEDFS_ACCESS_KEY:-ologies}"
export OLOGIES_TEST_S3_SECRET_KEY="${SEAWEEDFS_SECRET_KEY:-ologies-secret}"
export OLOGIES_TEST_ELASTICSEARCH_URL="http://127.0.0.1:${ES_PORT:-9200}"
export OLOGIES_TEST_ORTHANC_URL="http://127.0.0.1:${ORTHANC_HTTP_PORT:-8042}"
export OLOGIES_TEST_ORTHANC_DICOMWEB_URL="$OLOGIES_TEST_ORTHANC_URL/dicom-web"
export OLOGIES_TEST_ORTHANC_AET="${ORTHANC_AET:-ORTHANC}"
export OLOGIES_TEST_ORTHANC_DICOM_PORT="${ORTHANC_DICOM_PORT:-4242}"
export OLOGIES_TEST_ES_URL="$OLOGIES_TEST_ELASTICSEARCH_URL"  # the name the index contract tests read
