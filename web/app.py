"""``create_app(settings)``: the composition root of the web service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ingest.allocator import tune_allocator
from repository.settings import Settings
from web.dicomweb import router as dicomweb_router
from web.errors import install_error_handlers
from web.limits import BodySizeLimit
from web.observability import configure_logging, install_observability
from web.pages import router as pages_router
from web.pages.context import install_page_errors
from web.routes import governance, health, images, instances, reference, search
from web.services import Services


def create_app_from_environment() -> FastAPI:
    """The factory each ``ologies serve --workers N`` process calls: settings from the
    environment (the CLI puts its overrides there before the workers start)."""
    tune_allocator()
    settings = Settings()
    configure_logging(level=settings.log_level, json=settings.log_format == "json")
    return create_app(settings)


def create_app(settings: Settings | None = None, *, services: Services | None = None, reconcile: bool = True) -> FastAPI:
    settings = settings or (services.settings if services else Settings())
    built = services or Services.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if reconcile:
            built.start_reconciler()
        try:
            yield
        finally:
            built.close()

    app = FastAPI(
        title="Ologies",
        version="0.1.0",
        description="Central repository for clinical photographs, dermoscopy and video, stored as DICOM.",
        lifespan=lifespan,
    )
    app.state.services = built
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    install_error_handlers(app)
    for module in (health, images, search, instances, reference, governance):
        app.include_router(module.router)
    from web.routes import media, patients  # video playback; reconciliation and lesion tracking

    for extra in (media, patients):
        app.include_router(extra.router)
    app.include_router(dicomweb_router)
    app.include_router(pages_router)
    install_page_errors(app)
    install_observability(app)  # request IDs, metrics and the access log (outermost); /metrics
    return app
