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
