"""Keep only the parts of highdicom's standard tables that our IODs use.

highdicom's ``SOPClass`` asks ``is_attribute_in_iod`` on every object it builds, which loads a
table of every module of every IOD (about 65 MB per process once parsed). Ologies builds a
handful of IODs, so at start-up we load the table once, keep the modules of those IODs, and
hand highdicom the trimmed copy; a lookup outside it falls back to the full table. This uses a
private highdicom function: if it moves, nothing breaks, memory is just larger.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


class _TrimmedModuleMap(dict):  # type: ignore[type-arg]
    def __init__(self, kept: dict[str, Any], load_full: Any) -> None:
        super().__init__(kept)
        self._load_full = load_full

    def __missing__(self, key: str) -> Any:
        return self._load_full()[key]


def preload_standard_tables(sop_class_uids: Iterable[str]) -> None:
    try:
        from highdicom import _standard_utils as standard
    except ImportError:
        return
    get_full = getattr(standard.get_module_attribute_map, "__wrapped__", None)
    if get_full is None or isinstance(standard.get_module_attribute_map(), _TrimmedModuleMap):
        return
    iod_by_class = standard.get_sop_class_iod_map()
    modules_by_iod = standard.get_iod_module_map()
    wanted = {m["key"] for uid in sop_class_uids if uid in iod_by_class for m in modules_by_iod[iod_by_class[uid]]}
    full = standard.get_module_attribute_map()
    trimmed = _TrimmedModuleMap({k: v for k, v in full.items() if k in wanted}, functools.cache(get_full))
    standard.get_module_attribute_map.cache_clear()
    del full
    standard.get_module_attribute_map = lambda: trimmed  # type: ignore[assignment]
    gc.collect()
    log.debug("highdicom module table trimmed to %d modules", len(trimmed))
