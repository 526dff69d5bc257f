"""Two trusts' worth of people and devices, and an image at each trust for one patient."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests import imagegen
from tests.conftest import NHS_A, api_key, patient_fields

ROLES = ("photographer", "clinician", "device", "information-governance", "admin")
TRUSTS = ("REM", "RBN")


@dataclass
class World:
    client: TestClient
    keys: dict[tuple[str, str], str]  # (role, trust) -> secret
    own: str  # SOP Instance UID of NHS_A's image at REM
    other: str  # ... and at RBN
    app: object

    def as_(self, role: str | None, trust: str = "REM") -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.keys[(role, trust)]}"}


@pytest.fixture
def world(app) -> World:
    with TestClient(app) as client:
        keys = {(r, t): api_key(app, r, t, **({"department": "dermatology"} if r == "device" else {})) for r in ROLES for t in TRUSTS}
        uids = {}
        for seed, trust in enumerate(TRUSTS):
            response = client.post(
                "/api/v1/images",
                headers={"Authorization": f"Bearer {keys[('admin', trust)]}"},
                data=patient_fields(trust=trust, consent="teaching" if trust == "REM" else "clinical-care"),
                files={"file": (f"{trust}.jpg", imagegen.jpeg(imagegen.photo(64, 48, seed=100 + seed)))},
            )
            assert response.status_code == 201, response.text
            uids[trust] = response.json()["files"][0]["sop_instance_uid"]
        yield World(client, keys, uids["REM"], uids["RBN"], app)


__all__ = ["NHS_A", "World", "ROLES", "TRUSTS"]
