"""PDF consent forms and documents: checked for active content, then wrapped unchanged.

Decision: a PDF with active content is **refused, not neutralised**. Rewriting a PDF to strip
actions means trusting a PDF writer with hostile input and storing something other than what the
clinician saw and signed; refusing is simpler, safer and leaves the original intact. The reason
names what was found, so the sender can "print to PDF" (which flattens it) and try again.

Active content looked for: JavaScript (/JS, /JavaScript), /Launch, embedded files
(/EmbeddedFile, /EmbeddedFiles, /FileAttachment), links and form posts (/URI, /SubmitForm,
/ImportData, /GoToR, /GoToE), automatic actions (/OpenAction, /AA), /RichMedia and XFA forms.

Bounded parsing (RELIABILITY.md 2.8):

1. A byte scan of the whole file for those names, with ``#xx`` escapes in names decoded
   (``/J#61vaScript`` is ``/JavaScript``), for everything that is not inside a compressed stream.
2. pypdf then resolves every object listed in the cross-reference table, which decompresses the
   *object streams* (where names can hide) but never page content streams; pypdf's decompression
   caps are lowered to :attr:`PDFLimits.max_stream_bytes`, the object count is capped, and a
   nesting too deep for the parser is refused as a bomb.

The preview of page 1 is rendered by PDFium (pypdfium2) in a child process with a memory limit
and a timeout; where that is not installed or fails, a generic document icon is used.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from dataclasses import dataclass, field

from converters.base import SourceFile
from repository.errors import ConversionFailed, InvalidInput, PayloadTooLarge

MEDIA_TYPES = frozenset({"application/pdf"})
DEPENDENCIES = ("pypdf",)

ACTIVE_NAMES: dict[bytes, str] = {
    b"JS": "JavaScript",
    b"JavaScript": "JavaScript",
    b"Launch": "a Launch action (runs a program)",
    b"EmbeddedFile": "an embedded file",
    b"EmbeddedFiles": "embedded files",
    b"FileAttachment": "a file attachment",
    b"URI": "an external link (URI action)",
    b"SubmitForm": "a form that submits data",
    b"ImportData": "an ImportData action",
    b"GoToR": "a link to another file (GoToR)",
    b"GoToE": "a link to an embedded file (GoToE)",
    b"OpenAction": "an action run on opening (OpenAction)",
    b"AA": "automatic actions (AA)",
    b"RichMedia": "rich media (Flash or video)",
    b"XFA": "an XFA form",
}
_NAME = re.compile(rb"/([^\s/<>\[\]()%{}]{1,127})")
_HEX = re.compile(rb"#([0-9A-Fa-f]{2})")
# Stream payloads (images, page content) are binary: skipped by the byte scan, where a chance
# "/JS" would be a false alarm; object streams, where dictionaries can hide, are read by pypdf.
_STREAM = re.compile(rb"stream\r?\n.*?endstream", re.DOTALL)


@dataclass(frozen=True)
class PDFLimits:
    max_bytes: int = 64 * 1024 * 1024
    max_objects: int = 50_000
    max_stream_bytes: int = 16 * 1024 * 1024  # one decompressed object stream
    max_pages: int = 500
    render_timeout_s: float = 20.0
    render_memory_bytes: int = 1024 * 1024 * 1024
    preview_size: int = 1024


@dataclass
class CapturedDocument:
    original_sha256: str
    original_size: int
    data: bytes
    pages: int
    title: str = ""
    scanned: bool = True
    preview_jpeg: bytes = b""
    flags: list[str] = field(default_factory=list)


def is_available() -> bool:
    try:
        import pypdf  # noqa: F401
    except ImportError:
        return False
    return True


def convert(source: SourceFile, *, limits: PDFLimits | None = None, render_preview: bool = True) -> CapturedDocument:
    """Check one PDF and return it ready to wrap; ``ConversionFailed`` says why it is refused.

    ``render_preview=False`` leaves ``preview_jpeg`` empty (the ingest pipeline renders it later,
    when it is first asked for, from the stored object).
    """
    limits = limits or PDFLimits()
    if source.size > limits.max_bytes:
        raise PayloadTooLarge(f"the PDF is {source.size} bytes, more than the limit of {limits.max_bytes}")
    data = source.path.read_bytes()
    pages, title = check_document(data, limits)
    document = CapturedDocument(source.sha256, source.size, data, pages, title)
    if render_preview:
        document.preview_jpeg, rendered = preview(data, limits)
        if not rendered:
            document.flags.append("PREVIEW_ICON")
    return document


def check_document(data: bytes, limits: PDFLimits) -> tuple[int, str]:
    """(pages, title) of a PDF that may be stored: whole, and without active content, which is
    refused with what was found (``ConversionFailed``). Uploads and PDFs received inside DICOM
    objects (Encapsulated PDF by STOW-RS or C-STORE) pass the same check."""
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"the PDF is {len(data)} bytes, more than the limit of {limits.max_bytes}")
    start = data.find(b"%PDF-", 0, 1024)
    if start < 0:
        raise ConversionFailed("not a PDF (no %PDF- header)")
    if b"%%EOF" not in data[-2048:]:
        raise ConversionFailed("the PDF is truncated (no %%EOF at its end)")
    found = active_content(data)
    if found:
        raise ConversionFailed(_refusal(found))
    pages, title, hidden = _parse(data, limits)
    if hidden:
        raise ConversionFailed(_refusal(hidden))
    return pages, title


def active_content(data: bytes) -> list[str]:
    """Active-content names found in the raw bytes (outside compressed streams)."""
    found: dict[str, None] = {}
    for match in _NAME.finditer(_STREAM.sub(b"stream endstream", data)):
        name = match.group(1)
        if b"#" in name:
            name = _HEX.sub(lambda m: bytes([int(m.group(1), 16)]), name)
        what = ACTIVE_NAMES.get(name)
        if what:
            found[what] = None
    return list(found)


def _refusal(found: list[str]) -> str:
    return (
        "the PDF contains active content, which is refused: " + ", ".join(found)
        + ". Print it to a new PDF (which flattens it) or scan the paper form, and upload that."
    )


def _parse(data: bytes, limits: PDFLimits) -> tuple[int, str, list[str]]:
    """Resolve every object with pypdf (object streams decompressed, bounded)."""
    import pypdf
    from pypdf.errors import PdfReadError
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, StreamObject

    cap = limits.max_stream_bytes
    budget = pypdf.apply_configuration(
        zlib_maximum_output_length=cap, lzw_maximum_output_length=cap, run_length_maximum_output_length=cap,
        brotli_maximum_output_length=cap, jbig2_maximum_output_length=cap, maximum_declared_stream_length=cap,
        array_based_stream_maximum_output_length=cap, stream_decoding_work_maximum_length=4 * cap,
        jbig2dec_binary=None,  # never run an external decoder on hostile input
    )  # fmt: skip
    found: dict[str, None] = {}
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(min(limit, 400))
        budget.__enter__()
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise ConversionFailed("the PDF is encrypted; upload an unprotected copy")
        numbers = [(n, g) for g, entries in reader.xref.items() for n in entries]
        numbers += [(n, 0) for n in reader.xref_objStm]
        if len(numbers) > limits.max_objects:
            raise ConversionFailed(f"the PDF has more than {limits.max_objects} objects")

        def visit(value: object, depth: int) -> None:
            if depth > 64:
                raise ConversionFailed("the PDF's objects are nested too deeply (a PDF bomb?)")
            if isinstance(value, StreamObject) and value.get("/Type") == NameObject("/ObjStm"):
                # an object stream: its objects are compressed; scan them (bounded by the caps)
                for what in active_content(value.get_data()):
                    found[what] = None
            if isinstance(value, DictionaryObject):
                for key, item in value.items():
                    what = ACTIVE_NAMES.get(str(key)[1:].encode("latin-1", "replace"))
                    if what:
                        found[what] = None
                    if not isinstance(item, IndirectObject):
                        visit(item, depth + 1)
                if value.get("/S") in (NameObject("/JavaScript"), NameObject("/Launch")):
                    found[ACTIVE_NAMES[str(value["/S"])[1:].encode()]] = None
            elif isinstance(value, ArrayObject):
                for item in value:
                    if not isinstance(item, IndirectObject):
                        visit(item, depth + 1)

        for number, generation in numbers:
            try:
                obj = reader.get_object(IndirectObject(number, generation, reader))
            except (PdfReadError, ValueError, KeyError, TypeError):
                continue
            visit(obj, 0)
        pages = len(reader.pages)
        if pages == 0:
            raise ConversionFailed("the PDF has no pages")
        if pages > limits.max_pages:
            raise ConversionFailed(f"the PDF has {pages} pages, more than the limit of {limits.max_pages}")
        title = ""
        try:
            info = reader.metadata
            title = str(info.title or "") if info else ""
        except (PdfReadError, ValueError, TypeError):
            pass
    except RecursionError:
        raise ConversionFailed("the PDF's objects are nested too deeply (a PDF bomb?)") from None
    except (pypdf.errors.LimitReachedError, MemoryError) as exc:
        raise ConversionFailed(f"the PDF decompresses to too much data (a PDF bomb?): {exc}") from None
    except PdfReadError as exc:
        raise ConversionFailed(f"the PDF cannot be read: {exc}") from None
    except (InvalidInput, ConversionFailed):
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on hostile input
        raise ConversionFailed(f"the PDF cannot be read: {type(exc).__name__}") from None
    finally:
        budget.__exit__(None, None, None)
        sys.setrecursionlimit(limit)
    # Title from the Info dictionary is untrusted: keep printable text only (LO, 64 characters).
    title = re.sub(r"[^\w .,:;()/+'&-]", "", title).strip()[:64]
    return pages, title, list(found)


_RENDER = r"""
import io, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
size = int(sys.argv[2])
import pypdfium2 as pdfium
pdf = pdfium.PdfDocument(sys.stdin.buffer.read())
page = pdf[0]
width, height = page.get_size()
scale = min(size / max(width, height, 1.0), 4.0)
image = page.render(scale=scale, may_draw_forms=False).to_pil().convert("RGB")
out = io.BytesIO()
image.save(out, format="JPEG", quality=88)
sys.stdout.buffer.write(out.getvalue())
"""


def preview(data: bytes, limits: PDFLimits | None = None) -> tuple[bytes, bool]:
    """Page 1 as a JPEG (rendered in a child process), or a document icon; and whether rendered."""
    limits = limits or PDFLimits()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RENDER, str(limits.render_memory_bytes), str(limits.preview_size)],
            input=data, capture_output=True, timeout=limits.render_timeout_s, check=False,
        )  # fmt: skip
        if done.returncode == 0 and done.stdout.startswith(b"\xff\xd8"):
            return done.stdout, True
    except (subprocess.TimeoutExpired, OSError):
        pass
    return document_icon(), False


def document_icon(size: int = 256) -> bytes:
    """A plain page-with-lines icon, for documents that cannot be previewed."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (240, 244, 245))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = size // 5, size // 8, size - size // 5, size - size // 8
    draw.polygon([(left, top), (right - size // 8, top), (right, top + size // 8), (right, bottom), (left, bottom)],
                 fill=(255, 255, 255), outline=(66, 84, 98), width=max(2, size // 64))  # fmt: skip
    for row in range(5):
        y = top + size // 5 + row * size // 10
        draw.line([(left + size // 12, y), (right - size // 12, y)], fill=(174, 183, 189), width=max(2, size // 64))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()
