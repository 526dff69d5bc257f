"""The browser tests' world: the real app served by uvicorn on a loopback port over a temporary
embedded store, and Debian's Chromium driven by Playwright.

Playwright's own browser download fails here, so Chromium is the system one
(``/usr/bin/chromium``, installed by infra/install-system-deps.sh). The NHS.UK assets and
axe-core come from ``bash infra/build-assets.sh``, which the ``assets`` fixture runs if needed.
Nothing is skipped quietly: a missing browser or npm fails the run with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from repository.settings import Settings
from tests.bench.common import free_port
from web.pages.templating import vendor_available

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
MAX_FILE_BYTES = 6 * 1024 * 1024
BROWSER_USER, BROWSER_PASSWORD = "llyr.evans", "correct horse battery staple"


def sign_in(context, live_server) -> None:  # type: ignore[no-untyped-def]
    """Give a browser context the session a sign-in would give it (the sign-in page itself has
    its own test)."""
    services = live_server.services
    cookie, _ = services.sessions.issue(BROWSER_USER, services.accounts.session_generation(BROWSER_USER))
    context.add_cookies([{"name": "ologies_session", "value": cookie, "url": live_server.url}])  # small, so the "too large" case needs only a small file


@dataclass
class LiveServer:
    url: str
    app: object
    data: Path

    @property
    def services(self):  # type: ignore[no-untyped-def]
        return self.app.state.services  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def assets() -> None:
    if not (vendor_available() and AXE.is_file()):
        if shutil.which("npm") is None:
            pytest.fail("npm is needed to build the NHS.UK assets (infra/build-assets.sh)")
        subprocess.run(["bash", str(ROOT / "infra" / "build-assets.sh")], check=True, cwd=ROOT)


@pytest.fixture(scope="session")
def live_server(assets, tmp_path_factory) -> Iterator[LiveServer]:
    import uvicorn

    from web.app import create_app

    data = tmp_path_factory.mktemp("ologies-browser")
    settings = Settings(
        store_url=(data / "store").as_uri(),
        index_url=f"sqlite:///{data / 'index.sqlite3'}",
        allow_test_nhs_numbers=True,
        spool_dir=data,
        max_file_bytes=MAX_FILE_BYTES,
        max_upload_bytes=MAX_FILE_BYTES + 1024 * 1024,
        _env_file=None,
    )
    app = create_app(settings, reconcile=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="ologies-browser-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app did not start under uvicorn")
        time.sleep(0.05)
    assert httpx.get(url + "/healthz").status_code == 200
    app.state.services.accounts.add_user(
        BROWSER_USER, name="Llŷr Evans", role="admin", trust="REM", password=BROWSER_PASSWORD
    )
    yield LiveServer(url, app, data)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run infra/install-system-deps.sh (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _loopback_only(route) -> None:  # type: ignore[no-untyped-def]
    # The design system's CSS names a web font on an NHS host; tests touch nothing off this machine.
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "data:", "blob:")):
        route.continue_()
    else:
        route.abort("blockedbyclient")


@pytest.fixture
def page(browser, live_server):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url, accept_downloads=True)
    context.route("**/*", _loopback_only)
    sign_in(context, live_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def phone(browser, live_server):  # type: ignore[no-untyped-def]
    """A 390-pixel-wide touch screen, as an iPhone 12-15 in portrait."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True,
        base_url=live_server.url,
    )  # fmt: skip
    context.route("**/*", _loopback_only)
    sign_in(context, live_server)
    page = context.new_page()
    yield page
    context.close()
