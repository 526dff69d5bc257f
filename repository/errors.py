"""One framework-free error hierarchy for the whole service.

The web layer maps these classes to HTTP statuses in a single table (``web/errors.py``), the CLI
maps them to exit codes and the DIMSE listener to DICOM statuses. Each error carries a stable
machine-readable ``code`` and, where a request field is at fault, the name of that field.
Messages must be safe to show to the caller: never another patient's identity.
"""

from __future__ import annotations


class OlogiesError(Exception):
    """Root of every error the service raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(OlogiesError):
    code = "not_found"


class Unauthenticated(OlogiesError):
    """No credentials, or credentials that do not check out. Says nothing about why."""

    code = "unauthenticated"


class Forbidden(OlogiesError):
    """Authenticated, but this role or trust may not do this."""

    code = "forbidden"


class ReasonRequired(Forbidden):
    """Another trust's images for direct care: the caller must state a reason first."""

    code = "reason_required"


class Conflict(OlogiesError):
    """The request contradicts what is stored (for example the same image for another patient)."""

    code = "conflict"


class IdentityMismatch(Conflict):
    """An upload's patient details differ from those this trust holds for the NHS number: a wrong
    number would file images in another patient's record (confirm to file under new details)."""

    code = "identity_mismatch"


class AlreadyExists(Conflict):
    """A conditional create found the key taken (used inside adapters and the service)."""

    code = "already_exists"


class InvalidInput(OlogiesError):
    """A field or a file is wrong; ``field`` names it."""

    code = "invalid_input"


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"


class ConversionFailed(InvalidInput):
    """The file was recognised but cannot be turned into a valid DICOM object (corrupt, truncated)."""

    code = "conversion_failed"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class QueryError(InvalidInput):
    code = "invalid_query"


class MalformedRequest(InvalidInput):
    """The request itself cannot be read (a multipart body without a boundary, say): 400."""

    code = "malformed_request"


class NotAcceptable(OlogiesError):
    """No representation the client accepts can be produced (DICOMweb Accept negotiation): 406."""

    code = "not_acceptable"


class BackendUnavailable(OlogiesError):
    """A backend (object store or index) cannot be reached; the caller may retry later."""

    code = "backend_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(BackendUnavailable):
    code = "store_unavailable"


class IndexUnavailable(BackendUnavailable):
    code = "index_unavailable"


class StorageFull(OlogiesError):
    code = "storage_full"


class ConfigurationError(OlogiesError):
    """Settings are invalid or an optional dependency is missing; raised at start-up."""

    code = "configuration_error"
