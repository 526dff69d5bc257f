"""The Jinja environment of the pages: our templates first, then the NHS.UK design system's
component macros (nhsuk-frontend-jinja), and the formatting filters the templates share.

The NHS.UK CSS and JS are copied into ``web/static/vendor/`` by ``infra/build-assets.sh``. They
are optional at run time: without them the pages still render (plainly styled) and the JSON API
is untouched, so the service never depends on npm having run. A warning in the log says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape
from starlette.templating import Jinja2Templates

log = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parent.parent
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"
VENDOR = STATIC / "vendor" / "nhsuk"
VENDOR_FILES = ("nhsuk-frontend.min.css", "nhsuk-frontend.min.js")


def vendor_available() -> bool:
    return all((VENDOR / name).is_file() for name in VENDOR_FILES)


def check_vendor() -> bool:
    """Log once, at start-up, when the design system's assets have not been built."""
    ok = vendor_available()
    if not ok:
        log.warning(
            "NHS.UK frontend assets are missing from %s: pages will render unstyled. "
            "Run `bash infra/build-assets.sh` to build them (the API is not affected).",
            VENDOR,
        )
    return ok


def nhs_number_display(value: object) -> str:
    """The 3-3-4 form people read NHS numbers in (a temporary identifier is shown as it is)."""
    text = str(value or "")
    return f"{text[:3]} {text[3:6]} {text[6:]}" if len(text) == 10 and text.isdigit() else text


def long_date(value: object) -> str:
    """``2025-03-12`` or ``20250312`` as ``12 March 2025`` (the NHS style for dates)."""
    text = str(value or "").replace("-", "")[:8]
    try:
        day = dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return str(value or "")
    return f"{day.day} {day:%B %Y}"


_DT = re.compile(r"^(\d{8})(\d{2})(\d{2})(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


def capture_time(acquisition: object, offset: object = None) -> str:
    """A DICOM DT such as ``20250312140301+0100`` as ``12 March 2025, 14:03:01 (UTC+01:00)``.

    The offset is shown because photographs come from phones and cameras set to any time zone,
    and a clinician comparing two wounds needs to know the hours between them are real.
    """
    match = _DT.match(str(acquisition or "").strip())
    if not match:
        return ""
    day, hours, minutes, seconds, zone = match.groups()
    shown = f"{long_date(day)}, {hours}:{minutes}" + (f":{seconds}" if seconds else "")
    zone = zone or str(offset or "")
    if re.fullmatch(r"[+-]\d{4}", zone):
        shown += f" (UTC{zone[:3]}:{zone[3:]})"
    return shown


def megabytes(value: object) -> str:
    """Bytes as people read file sizes (as upload-queue.js writes them): ``512 MB``, ``3.4 MB``, ``90 KB``."""
    try:
        size = int(value) / (1024 * 1024)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return ""
    if size >= 100 or size == int(size) and size:
        return f"{size:.0f} MB"
    return f"{size:.1f} MB" if size >= 0.1 else f"{max(1, round(size * 1024))} KB"


def asset_version() -> str:
    """A short fingerprint of the static files, appended to their URLs to bust browser caches."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(STATIC)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def person_name(value: object) -> str:
    """A DICOM person name (``Family^Given^Middle^Prefix^Suffix``) in reading order."""
    parts = [p.strip() for p in str(value or "").split("^")]
    family, given = (parts + ["", ""])[:2]
    return " ".join(p for p in (parts[3] if len(parts) > 3 else "", given, family) if p)


CONSENT_LABELS = {
    "clinical-care": "For clinical care only",
    "teaching": "For teaching",
    "publication": "For publication",
}


def consent_label(value: object) -> str:
    """Consent as stored (``CLINICAL_CARE``) or as entered (``clinical-care``), in words."""
    key = str(value or "").strip().lower().replace("_", "-")
    return CONSENT_LABELS.get(key, key.replace("-", " ").capitalize() or "Not recorded")


def build_templates() -> Jinja2Templates:
    environment = Environment(
        loader=ChoiceLoader([FileSystemLoader(TEMPLATES), PackageLoader("nhsuk_frontend_jinja")]),
        # The design system's macros read optional parameters through chains (params.hint.text).
        undefined=ChainableUndefined,
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        nhs_number=nhs_number_display,
        long_date=long_date,
        capture_time=capture_time,
        megabytes=megabytes,
        person_name=person_name,
        consent_label=consent_label,
    )
    globals_: dict[str, Any] = {
        "vendor_ok": check_vendor(),
        "assetPath": "/static/vendor/nhsuk/assets",  # read by nhsuk/template.jinja
        "asset_version": asset_version(),
    }
    environment.globals.update(globals_)
    return Jinja2Templates(env=environment)
