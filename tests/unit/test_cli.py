"""The ``ologies`` command: ingest, reindex, reconcile and check over the embedded backends."""

from __future__ import annotations

import json

from ingest.cli import main
from repository import keys
from repository.registry import open_index, open_store
from repository.settings import Settings
from tests import imagegen
from tests.conftest import patient_fields


def run(capsys, tmp_path, *argv: str) -> tuple[int, str, str]:
    urls = ["--store-url", (tmp_path / "store").as_uri(), "--index-url", f"sqlite:///{tmp_path / 'i.db'}"]
    code = main([*urls, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def ingest_args(*files: str, **overrides: str) -> list[str]:
    args = ["ingest", *files]
    for name, value in patient_fields(**overrides).items():
        args += ["--" + name.replace("_", "-"), value]
    return args


def test_ingest_reindex_check(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OLOGIES_ALLOW_TEST_NHS_NUMBERS", "true")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(imagegen.jpeg(imagegen.photo(64, 48)))
    code, out, _ = run(capsys, tmp_path, *ingest_args(str(photo)))
    assert code == 0
    result = json.loads(out)
    assert result["files"][0]["status"] == "created" and result["searchable"] is True

    settings = Settings(store_url=(tmp_path / "store").as_uri(), index_url=f"sqlite:///{tmp_path / 'i.db'}", _env_file=None)
    index = open_index(settings)
    index.rebuild([])  # lose the index entirely
    code, out, _ = run(capsys, tmp_path, "check")
    assert code == 1 and json.loads(out)["missing_from_index"] == [result["files"][0]["sop_instance_uid"]]
    code, out, _ = run(capsys, tmp_path, "reindex", "--quiet")
    assert code == 0 and "indexed 1 instances" in out
    code, out, _ = run(capsys, tmp_path, "check")
    assert code == 0 and json.loads(out)["consistent"] is True


def test_reconcile_drains_pending_markers(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OLOGIES_ALLOW_TEST_NHS_NUMBERS", "true")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(imagegen.jpeg(imagegen.photo(64, 48, seed=2)))
    run(capsys, tmp_path, *ingest_args(str(photo)))
    settings = Settings(store_url=(tmp_path / "store").as_uri(), index_url=f"sqlite:///{tmp_path / 'i.db'}", _env_file=None)
    store = open_store(settings)
    [key] = [k for k in store.iter_keys(keys.STUDIES)]
    uid = keys.uids_from_instance_key(key)[2]
    store.put(keys.pending_key(uid), json.dumps({"key": key, "created": 0}).encode())
    open_index(settings).rebuild([])
    code, out, _ = run(capsys, tmp_path, "reconcile")
    assert code == 0 and "indexed 1 pending" in out and "0 markers remain" in out


def test_errors_map_to_exit_codes(capsys, tmp_path):
    photo = tmp_path / "notes.txt"
    photo.write_text("not a photograph")
    code, _, err = run(capsys, tmp_path, *ingest_args(str(photo)))
    assert code == 2 and "unsupported_media_type" in err and "notes.txt" in err
    code, _, err = run(capsys, tmp_path, *ingest_args(str(tmp_path / "missing.jpg")))
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, tmp_path, *ingest_args(str(photo), nhs_number="9990000019"))
    assert code == 2 and "(nhs_number)" in err


def test_invalid_configuration_is_reported_not_a_traceback(capsys, tmp_path):
    code = main(["--store-url", "ftp://nowhere", "check"])
    _, err = capsys.readouterr()
    assert code == 78 and "OLOGIES_STORE_URL" in err
