"""The composition root's product: every service object a request may need, built once."""

from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass, field

from ingest.pipeline import Ingestor
from repository.catalogue import Catalogue
from repository.errors import BackendUnavailable
from repository.registry import open_index, open_store
from repository.renditions import Renditions
from repository.service import Repository
from repository.settings import Settings

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3


def tune_allocator() -> None:
    """Serve every allocation over 256 KiB by mmap, so that the multi-megabyte buffers of an
    upload go back to the operating system when freed instead of staying in the heap: glibc
    otherwise raises its threshold after the first big free and the process stays large."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def warm_up() -> None:
    """Load the DICOM standard tables the builders need now, not in the first upload."""
    from converters.iods import SOP_CLASS_UIDS
    from converters.iods.tables import preload_standard_tables

    preload_standard_tables(SOP_CLASS_UIDS)


@dataclass
class Services:
    settings: Settings
    catalogue: Catalogue
    repository: Repository
    ingestor: Ingestor
    renditions: Renditions
    _stop: threading.Event = field(default_factory=threading.Event)
    _reconciler: threading.Thread | None = None

    @classmethod
    def build(cls, settings: Settings, *, store=None, index=None) -> "Services":  # type: ignore[no-untyped-def]
        catalogue = Catalogue.load(settings.organisations_file)
        repository = Repository(store or open_store(settings), index or open_index(settings))
        try:
            repository.index.ensure_schema()
        except BackendUnavailable as exc:
            # Start anyway: uploads are still accepted (as pending) and search answers 503.
            log.warning("index unavailable at start-up: %s", exc)
        warm_up()
        return cls(
            settings=settings,
            catalogue=catalogue,
            repository=repository,
            ingestor=Ingestor(repository, settings=settings, catalogue=catalogue),
            renditions=Renditions(
                repository, thumbnail_size=settings.thumbnail_size, rendered_max_size=settings.rendered_max_size
            ),
        )

    def start_reconciler(self) -> None:
        """Drain "index pending" markers in the background whenever the index is back."""

        def loop() -> None:
            while not self._stop.wait(self.settings.reconcile_interval_seconds):
                self.reconcile_once()

        self._reconciler = threading.Thread(target=loop, name="ologies-reconciler", daemon=True)
        self._reconciler.start()

    def reconcile_once(self) -> int:
        try:
            self.repository.index.ensure_schema()
            done = self.repository.reconcile_pending()
            if done:
                log.info("reconciler indexed %d pending instances", done)
            return done
        except BackendUnavailable as exc:
            log.info("reconciler waiting: %s", exc)
            return 0

    def close(self) -> None:
        self._stop.set()
        if self._reconciler is not None:
            self._reconciler.join(timeout=5)
        self.repository.index.close()
        self.repository.store.close()
