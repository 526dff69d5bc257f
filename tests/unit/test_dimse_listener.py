"""The DIMSE listener on loopback, driven by pynetdicom as a modality would: who may associate,
what is stored and answered, C-FIND at three levels, and the bounds that keep it available."""

from __future__ import annotations

import io
import socket
import tempfile
import time

import pytest
from pydicom import Dataset, dcmread
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from converters import dicom as dcm
from ingest.dimse import DimseListener
from repository.private_tags import get_private
from repository.settings import Settings
from tests import dicomgen
from tests.conftest import NHS_A, NHS_B
from tests.imagegen import photo
from web.services import Services

PEERS = {
    "CAMERA": {"trust": "REM", "department": "dermatology"},
    "VIEWER": {"trust": "REM", "role": "clinician"},
    "OTHERVIEW": {"trust": "RBN", "role": "clinician"},
    "LOCKED": {"trust": "REM", "hosts": ["10.9.9.9"]},
}


@pytest.fixture
def listener(tmp_path, request):
    settings = Settings(
        store_url=(tmp_path / "store").as_uri(), index_url=f"sqlite:///{tmp_path / 'index.sqlite3'}",
        allow_test_nhs_numbers=True, spool_dir=tmp_path, _env_file=None, dimse_peers=PEERS,
        dimse_acse_timeout=1.0, dimse_max_associations_per_peer=2, dimse_max_dataset_bytes=2_000_000,
    )  # fmt: skip
    services = Services.build(settings)
    # Stores in the association's thread (fast to start); the store processes have a test of their own.
    listening = DimseListener(services, processes=getattr(request, "param", 0))
    listening.start("127.0.0.1", 0)
    yield listening
    listening.stop()
    services.close()


def associate(listener, title: str = "CAMERA", contexts=None, source: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    ae = AE(ae_title=title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for context in contexts or [Verification]:
        if isinstance(context, tuple):
            ae.add_requested_context(*context)
        else:
            ae.add_requested_context(context)
    return ae.associate("127.0.0.1", listener.port, ae_title="OLOGIES", bind_address=(source, 0))


def store(listener, datasets: list[Dataset], title: str = "CAMERA") -> list[int]:  # type: ignore[no-untyped-def]
    contexts = sorted({(d.SOPClassUID, d.file_meta.TransferSyntaxUID) for d in datasets})
    assoc = associate(listener, title, [(c, [t]) for c, t in contexts])
    assert assoc.is_established
    statuses = []
    for ds in datasets:
        status = assoc.send_c_store(ds)
        statuses.append(int(status.Status) if status else -1)
    assoc.release()
    return statuses


def find(listener, identifier: Dataset, title: str = "VIEWER") -> tuple[list[Dataset], int]:  # type: ignore[no-untyped-def]
    assoc = associate(listener, title, [StudyRootQueryRetrieveInformationModelFind])
    assert assoc.is_established
    results, final = [], -1
    for status, found in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        if status and status.Status in (0xFF00, 0xFF01):
            results.append(found)
        elif status:
            final = int(status.Status)
    assoc.release()
    return results, final


def stored_object(listener, uid: str) -> Dataset:  # type: ignore[no-untyped-def]
    return dcmread(io.BytesIO(listener.services.repository.open_instance(uid).read()))


def test_echo_from_allowed_titles_only(listener):
    assoc = associate(listener)
    assert assoc.is_established and assoc.send_c_echo().Status == 0x0000
    assoc.release()
    stranger = associate(listener, "STRANGER")
    assert stranger.is_rejected


def test_peer_tied_to_an_address_is_refused_from_another(listener):
    assoc = associate(listener, "LOCKED")
    assert assoc.is_rejected and not assoc.is_established  # an A-ASSOCIATE-RJ, not accept-then-abort
    assert (assoc.acceptor.primitive.result, assoc.acceptor.primitive.diagnostic) == (0x01, 0x03)  # permanent; calling AE


def test_a_title_over_its_association_limit_is_rejected_for_now_and_admitted_once_one_ends(listener):
    # two addresses, so that the per-address bound (checked first, on the TCP connection) is not the one hit
    first, second = associate(listener, source="127.0.0.1"), associate(listener, source="127.0.0.2")
    assert first.is_established and second.is_established
    third = associate(listener, source="127.0.0.3")
    assert third.is_rejected
    assert (third.acceptor.primitive.result, third.acceptor.primitive.result_source,
            third.acceptor.primitive.diagnostic) == (0x02, 0x03, 0x02)  # transient: local limit exceeded
    first.release()
    deadline = time.monotonic() + 5
    while listener._per_title.get("CAMERA", 0) > 1 and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.02)
    fourth = associate(listener, source="127.0.0.3")
    assert fourth.is_established and fourth.send_c_echo().Status == 0x0000
    fourth.release()
    second.release()


@pytest.mark.parametrize("listener", [2], indirect=True)
def test_store_in_worker_processes(listener):
    datasets = [dicomgen.photo_dataset() for _ in range(4)] + [dicomgen.photo_dataset(patient_id="H1")]
    assert store(listener, datasets) == [0] * 4 + [dcm.DATASET_DOES_NOT_MATCH]
    assert stored_object(listener, datasets[0].SOPInstanceUID).PixelData == datasets[0].PixelData


def test_store_keeps_uids_strips_gps_and_records_the_peer(listener):
    clean, leaky = dicomgen.photo_dataset(), dicomgen.photo_dataset(gps=True)
    assert store(listener, [clean, leaky]) == [0x0000, dcm.ELEMENTS_DISCARDED]
    ds = stored_object(listener, leaky.SOPInstanceUID)
    assert "GPSLatitude" not in ds and ds.StudyInstanceUID == leaky.StudyInstanceUID
    private = get_private(ds)
    assert (private["IngestRoute"], private["TrustODSCode"], private["SpecialtyCode"]) == ("cstore", "REM", "dermatology")
    assert ds.file_meta.SourceApplicationEntityTitle == "CAMERA"


def test_store_failures_map_to_statuses(listener):
    first = dicomgen.photo_dataset()
    assert store(listener, [first]) == [0x0000]
    changed = dicomgen.photo_dataset(sop_uid=first.SOPInstanceUID, ImageComments="different")
    hospital_number = dicomgen.photo_dataset(patient_id="H1234")
    assert store(listener, [first, changed, hospital_number]) == [0x0000, dcm.DUPLICATE_SOP_INSTANCE, dcm.DATASET_DOES_NOT_MATCH]


def test_implicit_vr_is_accepted(listener):
    ds = dicomgen.photo_dataset(native=True)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    assert store(listener, [ds]) == [0x0000]
    assert stored_object(listener, ds.SOPInstanceUID).PixelData == ds.PixelData


def test_unaccepted_sop_class_and_transfer_syntax_are_not_negotiated(listener):
    assoc = associate(listener, contexts=[Verification, (dicomgen.CT_IMAGE, ["1.2.840.10008.1.2.1"]),
                                          (dicomgen.VL_PHOTOGRAPHIC, ["1.2.840.10008.1.2.4.70"])])  # fmt: skip
    assert assoc.is_established
    assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [Verification]
    assert len(assoc.rejected_contexts) == 2
    assoc.release()


def test_devices_cannot_find_and_oversized_data_sets_are_refused(listener):
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = ""
    assert find(listener, identifier, title="CAMERA") == ([], dcm.NOT_AUTHORIZED)
    big = dicomgen.photo_dataset(native=True, pixels=photo(1200, 900))  # 3.2 MB, the limit is 2 MB
    assert store(listener, [big]) in ([dcm.OUT_OF_RESOURCES], [-1])  # refused, or the association aborted
    with pytest.raises(Exception):
        listener.services.repository.locate(big.SOPInstanceUID)


def test_find_at_study_series_and_image_level(listener):
    a = [dicomgen.photo_dataset(study_uid="2.25.501", series_uid="2.25.5011") for _ in range(2)]
    a.append(dicomgen.photo_dataset(study_uid="2.25.501", series_uid="2.25.5012", sop_class=dicomgen.DERMOSCOPIC))
    b = dicomgen.photo_dataset(study_uid="2.25.502", patient_id=NHS_B, name="Llŷr^Zoë")
    assert store(listener, [*a, b]) == [0] * 4
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientID = NHS_A
    identifier.StudyInstanceUID = ""
    identifier.NumberOfStudyRelatedInstances = None
    identifier.ModalitiesInStudy = ""
    identifier.PatientName = ""
    (study,), status = find(listener, identifier)
    assert status == 0x0000
    assert (study.StudyInstanceUID, int(study.NumberOfStudyRelatedInstances)) == ("2.25.501", 3)
    assert list(study.ModalitiesInStudy) == ["DMS", "XC"]
    assert str(study.PatientName) == "O'Brien-Jones^Siân"
    series = Dataset()
    series.QueryRetrieveLevel = "SERIES"
    series.StudyInstanceUID = "2.25.501"
    series.SeriesInstanceUID = ""
    series.Modality = "DMS"
    found, _ = find(listener, series)
    assert [s.SeriesInstanceUID for s in found] == ["2.25.5012"]
    images = Dataset()
    images.QueryRetrieveLevel = "IMAGE"
    images.StudyInstanceUID = "2.25.501"
    images.SeriesInstanceUID = "2.25.5011"
    images.SOPInstanceUID = ""
    found, _ = find(listener, images)
    assert sorted(i.SOPInstanceUID for i in found) == sorted(d.SOPInstanceUID for d in a[:2])
    by_name = Dataset()
    by_name.QueryRetrieveLevel = "STUDY"
    by_name.PatientName = "LLYR*"
    by_name.StudyInstanceUID = ""
    found, _ = find(listener, by_name)
    assert [s.StudyInstanceUID for s in found] == ["2.25.502"]
    other_trust, _ = find(listener, identifier, title="OTHERVIEW")
    assert other_trust == []


def test_unsupported_matching_keys_are_refused(listener):
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientWeight = "70"
    found, status = find(listener, identifier)
    assert found == [] and status == dcm.DATASET_DOES_NOT_MATCH


def test_idle_sockets_from_one_host_cannot_lock_others_out(listener):
    idle = []
    for _ in range(10):
        try:
            idle.append(socket.create_connection(("127.0.0.1", listener.port), timeout=2, source_address=("127.0.0.2", 0)))
        except OSError:
            pass
    time.sleep(0.3)
    started = time.monotonic()
    assoc = associate(listener, "VIEWER")
    assert assoc.is_established and time.monotonic() - started < 2
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    for s in idle:
        s.close()


def test_idle_connection_is_dropped_after_the_acse_timeout(listener):
    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=5)
    started = time.monotonic()
    sock.recv(1024)  # returns when the listener aborts or closes the silent connection
    assert 0.5 < time.monotonic() - started < 4
    sock.close()


def test_with_no_peers_configured_it_starts_and_lets_nobody_in(tmp_path):
    settings = Settings(
        store_url=(tmp_path / "store").as_uri(), index_url=f"sqlite:///{tmp_path / 'index.sqlite3'}",
        spool_dir=tmp_path, _env_file=None, dimse_peers={},
    )  # fmt: skip
    services = Services.build(settings)
    listening = DimseListener(services)
    listening.start("127.0.0.1", 0)  # was a ValueError from pynetdicom: nothing listened at all
    try:
        for title in ("CAMERA", "NO PEERS ALLOWED"):
            assoc = associate(listening, title)
            assert not assoc.is_established
    finally:
        listening.stop()
        services.close()


def test_a_pdu_longer_than_allowed_is_aborted_from_its_header(listener):
    # An A-ASSOCIATE-RQ declaring 96 MiB, from a caller not yet identified: refused from its
    # 6-byte header (was read whole into memory first, up to 4 GiB).
    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=3)
    sock.sendall(b"\x01\x00" + (96 << 20).to_bytes(4, "big") + b"\x00" * 65536)
    answer = b""
    while len(answer) < 10:
        chunk = sock.recv(10 - len(answer))  # a timeout here: nothing answered
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert answer == bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x06])  # A-ABORT: service provider, invalid PDU parameter value
    # a P-DATA-TF longer than the maximum the listener announced, on an established association
    assoc = associate(listener)
    assert assoc.is_established and assoc.acceptor.maximum_length == listener.settings.dimse_max_pdu
    assoc.dul.socket.socket.sendall(b"\x04\x00" + (listener.settings.dimse_max_pdu + 1).to_bytes(4, "big") + b"\x00" * 4096)
    deadline = time.monotonic() + 3
    while not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert assoc.is_aborted
    # what the limits allow still passes: a data set of many PDUs of the maximum length
    big = dicomgen.photo_dataset(native=True, pixels=photo(600, 400))  # 720 KB: 3 PDUs
    assert store(listener, [big]) == [0x0000]


def _closed_after(sock: socket.socket, trickle: float | None, limit: float = 6.0) -> float | None:
    """Seconds until the listener closes ``sock`` (a byte sent every ``trickle`` s meanwhile), or None."""
    started = time.monotonic()
    sock.settimeout(trickle or limit)
    while time.monotonic() - started < limit:
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except socket.timeout:
            try:
                sock.send(b"\x00")
            except OSError:
                return time.monotonic() - started
        except OSError:
            return time.monotonic() - started
    return None


def test_a_pdu_begun_and_then_stalled_or_trickled_ends_the_connection(tmp_path):
    settings = Settings(
        store_url=(tmp_path / "store").as_uri(), index_url=f"sqlite:///{tmp_path / 'index.sqlite3'}",
        spool_dir=tmp_path, _env_file=None, dimse_peers=PEERS, dimse_acse_timeout=1.0, dimse_network_timeout=1.5,
    )  # fmt: skip
    services = Services.build(settings)
    listening = DimseListener(services, processes=0)
    listening.start("127.0.0.1", 0)
    try:
        # an A-ASSOCIATE-RQ header declaring 4096 bytes, then silence, or a byte every 0.3 s:
        # held for ever (120 s in review), the header having stopped the ACSE timer
        for trickle in (None, 0.3):
            sock = socket.create_connection(("127.0.0.1", listening.port), timeout=5)
            sock.sendall(b"\x01\x00\x00\x00\x10\x00")
            closed = _closed_after(sock, trickle)
            sock.close()
            assert closed is not None and closed < 2.5, (trickle, closed)
        # on an established association, a P-DATA-TF begun and then trickled: the network timeout
        assoc = associate(listening)
        assert assoc.is_established
        raw = assoc.dul.socket.socket
        raw.sendall(b"\x04\x00\x00\x00\x10\x00")
        started = time.monotonic()
        while not assoc.is_aborted and time.monotonic() - started < 6:
            time.sleep(0.3)
            try:
                raw.send(b"\x00")
            except OSError:
                break
        deadline = time.monotonic() + 2
        while not assoc.is_aborted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert assoc.is_aborted and time.monotonic() - started < 4.5
        # and a data set of several PDUs is still stored
        ds = dicomgen.photo_dataset(native=True, pixels=photo(600, 400))
        assert store(listening, [ds]) == [0x0000]
    finally:
        listening.stop()
        services.close()


def test_connections_from_one_address_are_bounded_until_they_close(listener):
    # the bound (2 here) counts connections while they are open: it was released at once,
    # pynetdicom's handler returning as soon as the association's thread had started
    first, second = associate(listener, "CAMERA"), associate(listener, "VIEWER")
    assert first.is_established and second.is_established
    third = associate(listener, "OTHERVIEW")  # a title under its own bound, from the same address
    assert not third.is_established and not third.is_rejected  # the connection closed at once
    idle = [socket.create_connection(("127.0.0.1", listener.port), timeout=0.25, source_address=("127.0.0.4", 0))
            for _ in range(4)]  # fmt: skip
    dropped = []
    for sock in reversed(idle):  # the last first: the held ones are dropped after the ACSE timeout (1 s)
        try:
            dropped.append(sock.recv(16) == b"")
        except socket.timeout:
            dropped.append(False)  # held: waiting for an A-ASSOCIATE-RQ
        sock.close()
    assert dropped == [True, True, False, False]
    first.release()
    deadline = time.monotonic() + 5
    while listener._per_address.get("127.0.0.1", 0) > 1 and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.02)
    fourth = associate(listener, "OTHERVIEW")
    assert fourth.is_established and fourth.send_c_echo().Status == 0x0000
    fourth.release()
    second.release()


def _p_data_pdus(ds: Dataset, context_id: int, max_pdu: int) -> list[bytes]:
    """The P-DATA-TF PDUs of a C-STORE-RQ of ``ds``, encoded as pynetdicom would send them."""
    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import encode
    from pynetdicom.pdu import P_DATA_TF

    request = C_STORE()
    request.MessageID, request.Priority = 1, 2
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    request.DataSet = io.BytesIO(encode(ds, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    pdus = []
    for primitive in message.encode_msg(context_id, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        pdus.append(pdu.encode())
    return pdus


def test_a_data_set_cut_short_leaves_no_file_behind(listener, tmp_path, monkeypatch):
    received = tmp_path / "received"  # where pynetdicom's NamedTemporaryFile puts what it receives
    received.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(received))

    def wait_for_files(present: bool) -> list[str]:
        deadline = time.monotonic() + 5
        while bool(list(received.iterdir())) != present and time.monotonic() < deadline:
            time.sleep(0.05)
        return [p.name for p in received.iterdir()]

    # over dimse_max_dataset_bytes: the listener aborts the association (the partial file was left)
    big = dicomgen.photo_dataset(native=True, pixels=photo(1200, 900))
    assert store(listener, [big]) in ([dcm.OUT_OF_RESOURCES], [-1])
    assert wait_for_files(False) == []
    # the peer aborts in the middle of a data set
    ds = dicomgen.photo_dataset(native=True, pixels=photo(600, 400))
    ds.file_meta.TransferSyntaxUID = dcm.EXPLICIT_VR_LE
    assoc = associate(listener, contexts=[(ds.SOPClassUID, [dcm.EXPLICIT_VR_LE])])
    assert assoc.is_established
    pdus = _p_data_pdus(ds, assoc.accepted_contexts[0].context_id, assoc.acceptor.maximum_length)
    raw = assoc.dul.socket.socket
    raw.sendall(b"".join(pdus[:2]))  # the command and the first part of the data set
    assert len(wait_for_files(True)) == 1
    raw.sendall(bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0]))  # A-ABORT, service user
    assert wait_for_files(False) == []
    with pytest.raises(Exception):
        listener.services.repository.locate(ds.SOPInstanceUID)
    # and a whole one is stored, its file removed
    assert store(listener, [ds]) == [0x0000]
    assert wait_for_files(False) == []


def test_find_returns_keys_below_the_query_level_empty(listener):
    # a study of two series: a STUDY answer gave one series' UID and modality and one instance's
    # UID as the study's, a SERIES answer one instance's number and rows as the series'
    xc = dicomgen.photo_dataset(study_uid="2.25.601", series_uid="2.25.6011")
    dms = dicomgen.photo_dataset(study_uid="2.25.601", series_uid="2.25.6012", sop_class=dicomgen.DERMOSCOPIC)
    assert store(listener, [xc, dms]) == [0, 0]

    def query(level: str, **keys: str) -> tuple[list[Dataset], int]:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = level
        for keyword, value in keys.items():
            setattr(identifier, keyword, value)
        return find(listener, identifier)

    (study,), status = query("STUDY", StudyInstanceUID="2.25.601", SeriesInstanceUID="", Modality="",
                             SOPInstanceUID="", InstanceNumber="", ModalitiesInStudy="", PatientID="")  # fmt: skip
    assert status == 0x0000
    assert (study.SeriesInstanceUID, study.Modality, study.SOPInstanceUID, study.InstanceNumber) == ("", "", "", None)
    assert list(study.ModalitiesInStudy) == ["DMS", "XC"] and study.PatientID == NHS_A
    series, _ = query("SERIES", StudyInstanceUID="2.25.601", SeriesInstanceUID="", Modality="", SOPInstanceUID="",
                      Rows=None, ModalitiesInStudy="", NumberOfStudyRelatedInstances=None)  # fmt: skip
    assert sorted((s.SeriesInstanceUID, s.Modality) for s in series) == [("2.25.6011", "XC"), ("2.25.6012", "DMS")]
    for s in series:
        assert (s.SOPInstanceUID, s.Rows, s.ModalitiesInStudy, s.NumberOfStudyRelatedInstances) == ("", None, "", None)
    (image,), _ = query("IMAGE", StudyInstanceUID="2.25.601", SeriesInstanceUID="2.25.6011", SOPInstanceUID="",
                        Rows=None, Modality="", ModalitiesInStudy="")  # fmt: skip
    assert (image.SOPInstanceUID, image.Rows, image.Modality, image.ModalitiesInStudy) == (xc.SOPInstanceUID, xc.Rows, "XC", "")
    # ... and with a value, such a key is refused, not matched (ModalitiesInStudy against a series' Modality)
    assert query("SERIES", StudyInstanceUID="2.25.601", ModalitiesInStudy="XC") == ([], dcm.DATASET_DOES_NOT_MATCH)
