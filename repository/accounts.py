"""Local accounts, device API keys and cross-trust grants, kept in the object store beside the
images so that every app server sees the same ones and a fresh install needs nothing else.

    security/users/{username}.json      password hashed with scrypt
    security/keys/{key_id}.json         only the SHA-256 of the secret is kept
    security/grants/{subject}/{patient_id}.json

Secrets are printed once when made and never stored. Lookups are cached for a few seconds, which
bounds how long a disabled account or a revoked key keeps working (``CACHE_SECONDS``).

Signing out ends a user's page sessions on every worker and every server: each user record has a
session generation, each session cookie carries the generation it was issued under, and signing
out moves the user's generation on, so that every cookie issued before is void (the user is
signed out everywhere). The process that handled the sign-out refuses the old cookie at once;
others within ``CACHE_SECONDS``, when their cached copy of the record expires. Sign-in reads the
record afresh, so a new session never carries a stale generation.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass

from repository.access import Grant, Principal, RoleValues
from repository.errors import AlreadyExists, InvalidInput, NotFound, Unauthenticated
from repository.store import ObjectStore

CACHE_SECONDS = 5.0
KEY_PREFIX = "olk_"
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_KEY = re.compile(r"^olk_([0-9a-f]{16})_([A-Za-z0-9_-]{32,64})$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    except ValueError:
        return False
    candidate = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return scheme == "scrypt" and hmac.compare_digest(candidate, digest)


@dataclass
class UserRecord:
    username: str
    name: str
    role: str
    trust: str
    department: str
    password_hash: str
    disabled: bool = False
    session_generation: int = 0  # sessions issued under an earlier generation are void

    def principal(self) -> Principal:
        return Principal(f"user:{self.username}", self.name, RoleValues(self.role), self.trust, self.department, "user")


@dataclass
class KeyRecord:
    key_id: str
    name: str
    role: str
    trust: str
    department: str
    secret_sha256: str
    revoked: bool = False
    created: str = ""

    def principal(self) -> Principal:
        kind = "device" if self.role == RoleValues.DEVICE.value else "user"
        return Principal(f"key:{self.key_id}", self.name, RoleValues(self.role), self.trust, self.department, kind)


class Accounts:
    def __init__(self, store: ObjectStore, *, known_trusts: set[str] | None = None) -> None:
        self.store = store
        self.known_trusts = known_trusts
        self._cache: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    # -- storage helpers ---------------------------------------------------------------------
    def _read(self, key: str, *, fresh: bool = False) -> dict | None:  # type: ignore[type-arg]
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit and now - hit[0] < CACHE_SECONDS and not fresh:
            return hit[1]  # type: ignore[return-value]
        try:
            with self.store.open(key) as handle:
                value = json.loads(handle.read())
        except NotFound:
            value = None
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def _write(self, key: str, value: dict, *, create: bool = False) -> None:  # type: ignore[type-arg]
        self.store.put(key, json.dumps(value, ensure_ascii=False).encode(), media_type="application/json", if_none_match=create)
        with self._lock:
            self._cache.pop(key, None)

    def _check(self, role: str, trust: str) -> tuple[str, str]:
        try:
            role = RoleValues(role).value
        except ValueError:
            raise InvalidInput(f"unknown role {role!r}", field="role") from None
        trust = trust.upper()
        if self.known_trusts is not None and trust not in self.known_trusts:
            raise InvalidInput(f"unknown trust ODS code {trust!r}", field="trust")
        return role, trust

    # -- users -------------------------------------------------------------------------------
    def add_user(self, username: str, *, name: str, role: str, trust: str, password: str, department: str = "") -> UserRecord:
        if not _USERNAME.match(username):
            raise InvalidInput("username must be 2-64 lower-case letters, digits, '.', '_' or '-'", field="username")
        if len(password) < 12:
            raise InvalidInput("password must be at least 12 characters", field="password")
        role, trust = self._check(role, trust)
        record = UserRecord(username, name, role, trust, department, hash_password(password))
        try:
            self._write(f"security/users/{username}.json", asdict(record), create=True)
        except AlreadyExists:
            raise AlreadyExists(f"user {username} already exists") from None
        return record

    def user(self, username: str, *, fresh: bool = False) -> UserRecord | None:
        if not _USERNAME.match(username or ""):
            return None
        data = self._read(f"security/users/{username}.json", fresh=fresh)
        return UserRecord(**data) if data else None

    def set_disabled(self, username: str, disabled: bool) -> None:
        record = self.user(username, fresh=True)
        if record is None:
            raise NotFound(f"no user {username}")
        record.disabled = disabled
        self._write(f"security/users/{username}.json", asdict(record))

    def sign_in(self, username: str, password: str) -> tuple[Principal, int]:
        """The principal, and the session generation a new session is to carry (read afresh:
        a cached one from before a sign-out elsewhere would make the new session void)."""
        record = self.user(username.strip().lower(), fresh=True)
        # Hash even for an unknown user, so that timing does not tell which usernames exist.
        stored = record.password_hash if record else hash_password("timing-equaliser")
        if not verify_password(password, stored) or record is None or record.disabled:
            raise Unauthenticated("sign-in failed")
        return record.principal(), record.session_generation

    def active_user(self, username: str, generation: int = 0) -> Principal:
        """The principal of a signed-in session, re-checked: disabled users are refused, and so is
        a session issued before the user last signed out (``end_sessions``)."""
        record = self.user(username)
        if record is None or record.disabled or generation != record.session_generation:
            raise Unauthenticated("session is no longer valid")
        return record.principal()

    def session_generation(self, username: str) -> int:
        record = self.user(username, fresh=True)
        return record.session_generation if record else 0

    def end_sessions(self, username: str) -> None:
        """Void every session of the user issued so far (signing out signs out everywhere)."""
        record = self.user(username, fresh=True)
        if record is None:
            return
        record.session_generation += 1
        self._write(f"security/users/{username}.json", asdict(record))

    # -- API keys ----------------------------------------------------------------------------
    def create_key(self, *, name: str, role: str, trust: str, department: str = "") -> tuple[KeyRecord, str]:
        """Make a key; return its record and the secret, which is shown once and never kept."""
        role, trust = self._check(role, trust)
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        record = KeyRecord(
            key_id, name, role, trust, department, hashlib.sha256(secret.encode()).hexdigest(),
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )  # fmt: skip
        self._write(f"security/keys/{key_id}.json", asdict(record), create=True)
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    def keys(self) -> list[KeyRecord]:
        return [KeyRecord(**self._read(k)) for k in self.store.iter_keys("security/keys/") if self._read(k)]  # type: ignore[arg-type]

    def revoke_key(self, key_id: str) -> None:
        data = self._read(f"security/keys/{key_id}.json") if re.fullmatch(r"[0-9a-f]{16}", key_id) else None
        if data is None:
            raise NotFound(f"no key {key_id}")
        data["revoked"] = True
        self._write(f"security/keys/{key_id}.json", data)

    def authenticate_key(self, presented: str) -> Principal:
        match = _KEY.match(presented or "")
        if not match:
            raise Unauthenticated("invalid credentials")
        data = self._read(f"security/keys/{match.group(1)}.json")
        digest = hashlib.sha256(match.group(2).encode()).hexdigest()
        if not data or data.get("revoked") or not hmac.compare_digest(digest, data["secret_sha256"]):
            raise Unauthenticated("invalid credentials")
        return KeyRecord(**data).principal()

    # -- cross-trust grants ------------------------------------------------------------------
    @staticmethod
    def _grant_key(subject: str, patient_id: str) -> str:
        return f"security/grants/{hashlib.sha256(subject.encode()).hexdigest()[:32]}/{patient_id}.json"

    def grant(self, principal: Principal, patient_id: str, reason: str, *, hours: float = 12.0) -> Grant:
        reason = reason.strip()
        if len(reason) < 10:
            raise InvalidInput("give the reason for direct care in a sentence (at least 10 characters)", field="reason")
        now = dt.datetime.now(dt.timezone.utc)
        grant = Grant(principal.subject, patient_id, reason[:500], now, now + dt.timedelta(hours=hours))
        self._write(self._grant_key(principal.subject, patient_id), {
            "subject": grant.subject, "patient_id": patient_id, "reason": grant.reason,
            "granted_at": grant.granted_at.isoformat(), "expires_at": grant.expires_at.isoformat(),
        })  # fmt: skip
        return grant

    def grant_for(self, subject: str, patient_id: str) -> Grant | None:
        if not re.fullmatch(r"[0-9A-Z-]{1,40}", patient_id or ""):
            return None
        data = self._read(self._grant_key(subject, patient_id))
        if not data:
            return None
        return Grant(
            data["subject"], data["patient_id"], data["reason"],
            dt.datetime.fromisoformat(data["granted_at"]), dt.datetime.fromisoformat(data["expires_at"]),
        )  # fmt: skip

    def revoke_grant(self, subject: str, patient_id: str) -> None:
        self.store.delete(self._grant_key(subject, patient_id))
        with self._lock:
            self._cache.pop(self._grant_key(subject, patient_id), None)
