"""Settings validation at start-up (repository/settings.py): a bad value stops start-up with a
message naming the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from repository.settings import Settings


def settings(tmp_path, **values) -> Settings:
    return Settings(store_url=(tmp_path / "store").as_uri(), index_url=f"sqlite:///{tmp_path / 'i.db'}",
                    _env_file=None, **values)  # fmt: skip


@pytest.mark.parametrize("name", ["session_secret", "audit_key", "s3_secret_key", "es_password"])
@pytest.mark.parametrize("value", ["REPLACE-ME", "REPLACE-ME-WITH-64-RANDOM-CHARACTERS", "change-me-minio", "change-me"])
def test_placeholder_secrets_stop_start_up_naming_the_setting(tmp_path, name, value):
    with pytest.raises(ValidationError) as raised:
        settings(tmp_path, **{name: value})
    assert f"OLOGIES_{name.upper()}" in str(raised.value) or name in str(raised.value)
    if len(value) >= 32 or name != "audit_key":  # a shorter audit key fails its length check first
        assert "placeholder" in str(raised.value)


def test_real_secrets_are_accepted(tmp_path):
    secret = "k3Jq9vXw2LmN8pRt5yZa7bCd4eFg6hHj"
    done = settings(tmp_path, session_secret=secret, audit_key=secret, s3_secret_key="s3cret-change-me", es_password=secret)
    assert done.audit_key == secret and done.s3_secret_key == "s3cret-change-me"


def test_video_and_file_limits_are_held_to_the_upload_limit(tmp_path):
    done = settings(tmp_path, max_upload_bytes=1000, max_file_bytes=5000, max_video_bytes=9000)
    assert (done.max_upload_bytes, done.max_file_bytes, done.max_video_bytes) == (1000, 1000, 1000)


def _bytes(text: str) -> int:
    """'8 GiB + 64 MiB', '512 MiB', '200' as the README writes them."""
    units = {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10, "": 1}
    total = 0
    for term in text.split("+"):
        number, _, unit = term.strip().replace(",", "").partition(" ")
        total += int(number) * units[unit]
    return total


def test_readme_states_the_real_upload_limits(tmp_path):
    """README, Configuration: the row of upload limits names each setting with its code default."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| `OLOGIES_MAX_UPLOAD_BYTES`")]
    names_cell, defaults_cell = row.split("|")[1:3]
    names = [n.strip(" `").removeprefix("OLOGIES_").lower() for n in names_cell.split(",")]
    defaults = [_bytes(d) for d in defaults_cell.split(", ")]
    assert len(names) == len(defaults)
    default = settings(tmp_path)
    assert {n: getattr(default, n) for n in names} == dict(zip(names, defaults))


def test_index_pause_outlasts_detecting_a_hung_index(tmp_path):
    """After an index write fails, uploads skip the index for index_retry_seconds: shorter than
    the es_timeout x 3 it takes to find a hung index failing, every other upload waits that out
    (review D3). A successful reconcile pass ends the pause early, so recovery is not slowed."""
    default = settings(tmp_path)
    assert default.index_retry_seconds > default.es_timeout * 3
    assert default.index_retry_seconds > default.reconcile_interval_seconds


def test_a_mistyped_setting_in_the_environment_stops_start_up(tmp_path, monkeypatch):
    """OLOGIES_STORE_ULR was ignored and the store fell back to a local folder (review D2)."""
    monkeypatch.setenv("OLOGIES_STORE_ULR", "s3://bucket/dicom")
    with pytest.raises(ValidationError, match=r"OLOGIES_STORE_ULR \(did you mean OLOGIES_STORE_URL\?\)"):
        settings(tmp_path)
    monkeypatch.delenv("OLOGIES_STORE_ULR")
    monkeypatch.setenv("ologies_es_pasword", "x")  # names are not case-sensitive, as the settings'
    with pytest.raises(ValidationError, match="OLOGIES_ES_PASWORD"):
        settings(tmp_path)


def test_the_projects_own_variables_are_not_taken_for_settings(tmp_path, monkeypatch):
    for name in ("OLOGIES_TEST_ELASTICSEARCH_URL", "OLOGIES_FUZZ_SECONDS", "OLOGIES_RUN_DIR", "OLOGIES_CACHE",
                 "OLOGIES_START_TIMEOUT", "OLOGIES_BENCH_KEEP", "OLOGIES_CORPUS_SEED", "OLOGIES_KEY"):  # fmt: skip
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("OLOGIES_ES_TIMEOUT", "3")
    assert settings(tmp_path).es_timeout == 3.0
