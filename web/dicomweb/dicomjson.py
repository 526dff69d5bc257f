"""DICOM JSON (PS3.18 Annex F) for DICOMweb: QIDO-RS results from index documents, WADO-RS
metadata from stored headers (binary values by ``BulkDataURI``), and STOW-RS responses."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.datadict import dictionary_VR, tag_for_keyword

from search.qido import ATTRIBUTES

MEDIA_TYPE = "application/dicom+json"
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
BULK_THRESHOLD = 1024  # binary values longer than this go by BulkDataURI
_NUMERIC = {"IS": int, "DS": float, "US": int, "UL": int, "SS": int, "SL": int, "FL": float, "FD": float, "SV": int, "UV": int}


@lru_cache(maxsize=4096)
def tag_key(keyword_or_tag: str | int) -> str:
    tag = keyword_or_tag if isinstance(keyword_or_tag, int) else tag_for_keyword(keyword_or_tag)
    assert tag is not None, keyword_or_tag
    return f"{int(tag):08X}"


def element(vr: str, values: list[Any] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"vr": vr}
    if values:
        item["Value"] = values
    return item


def person_name(value: str) -> dict[str, str]:
    groups = str(value).split("=")
    names = ("Alphabetic", "Ideographic", "Phonetic")
    return {name: group for name, group in zip(names, groups) if group}


def from_text(vr: str, text: object) -> dict[str, Any]:
    """An element from an index value (multiple values joined by backslashes)."""
    if text is None or text == "":
        return element(vr)
    if vr in _NUMERIC and isinstance(text, (int, float)):
        return element(vr, [text])
    values: list[Any] = str(text).split("\\")
    if vr == "PN":
        values = [person_name(v) if v else None for v in values]
    elif vr in _NUMERIC:
        converted: list[Any] = []
        for v in values:
            try:
                converted.append(_NUMERIC[vr](v.strip()))
            except ValueError:
                converted.append(None)
        values = converted
    return element(vr, values)


def qido_result(
    document: dict[str, Any], returns: tuple[str, ...], computed: dict[str, dict[str, Any]], retrieve_url: str
) -> dict[str, Any]:
    """One QIDO-RS result: the requested attributes from the document, ordered by tag."""
    out: dict[str, dict[str, Any]] = {}
    for keyword in returns:
        if keyword in computed:
            out[tag_key(keyword)] = computed[keyword]
            continue
        attribute = ATTRIBUTES[keyword]
        if attribute.field is None:
            continue
        out[tag_key(keyword)] = from_text(attribute.vr, document.get(attribute.field))
    out[tag_key("RetrieveURL")] = element("UR", [retrieve_url])
    return dict(sorted(out.items()))


def metadata(
    ds: Dataset, bulk_uri: Callable[[DataElement], str], *, pixel_vr: str | None = None, pixel_uri: str = ""
) -> dict[str, Any]:
    """An instance's header as DICOM JSON: binary values over the threshold become BulkDataURIs,
    and Pixel Data (absent from a header read without it) is named by ``pixel_uri``."""

    def handler(elem: DataElement) -> str:
        return bulk_uri(elem)

    data = ds.to_json_dict(bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=handler)
    if pixel_vr and pixel_uri:
        data["7FE00010"] = {"vr": pixel_vr, "BulkDataURI": pixel_uri}
    return dict(sorted(data.items()))


def stow_response(
    stored: list[tuple[str, str, str, int | None]],
    failed: list[tuple[str, str, int]],
    other_failures: list[int],
    study_url: str | None,
) -> dict[str, Any]:
    """Store Instances Response Module (PS3.18 Table 10.5.3-3).

    ``stored``: (class UID, instance UID, retrieve URL, warning reason or None);
    ``failed``: (class UID, instance UID, failure reason); ``other_failures``: reasons of parts
    that could not be tied to an instance.
    """
    out: dict[str, Any] = {}
    if study_url:
        out["00081190"] = element("UR", [study_url])
    if failed:
        out["00081198"] = element("SQ", [
            {"00081150": element("UI", [c] if c else None), "00081155": element("UI", [i] if i else None),
             "00081197": element("US", [reason])}
            for c, i, reason in failed
        ])  # fmt: skip
    if stored:
        items = []
        for sop_class, sop_uid, url, warning in stored:
            item = {"00081150": element("UI", [sop_class]), "00081155": element("UI", [sop_uid]), "00081190": element("UR", [url])}
            if warning is not None:
                item["00081196"] = element("US", [warning])
            items.append(dict(sorted(item.items())))
        out["00081199"] = element("SQ", items)
    else:
        out["00081199"] = element("SQ")
    if other_failures:
        out["0008119A"] = element("SQ", [{"00081197": element("US", [r])} for r in other_failures])
    return dict(sorted(out.items()))


def vr_of(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return str(dictionary_VR(tag)) if tag is not None else "UN"
