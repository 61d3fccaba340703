"""``/docs`` and ``/redoc`` work offline: in Chromium with every request off loopback
blocked, both pages load their scripts from this server and show the routes (#12.13)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .apiserver import serve_in_thread
from .helpers import local_settings

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():  # .ci/run installs it; a developer machine may not have it
    pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("apidocs")
    with serve_in_thread(local_settings(root, provider="preview")) as url:
        yield url


@pytest.fixture
def offline_page(server):
    """A page whose every request off loopback is blocked (and recorded)."""
    blocked: list[str] = []
    errors: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})

        def guard(route):
            if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        context.close()
        browser.close()
    assert blocked == [], blocked
    assert errors == [], errors


def test_swagger_ui_shows_the_routes_offline(offline_page):
    offline_page.goto("/docs")
    expect(offline_page.locator(".swagger-ui .info .title")).to_contain_text("Actor Maker")
    paths = offline_page.locator(".opblock-summary-path")
    expect(paths.first).to_be_visible(timeout=20_000)
    shown = set(paths.all_inner_texts())
    assert "/api/actors" in {p.replace("\u200b", "") for p in shown}
    assert len(shown) > 30


def test_redoc_shows_the_routes_offline(offline_page):
    offline_page.goto("/redoc")
    expect(offline_page.get_by_text("Actor Maker", exact=False).first).to_be_visible(timeout=20_000)
    expect(
        offline_page.get_by_text("/api/actors/{actor_id}/training-data", exact=True).first
    ).to_be_attached(timeout=20_000)


def test_docs_pages_name_no_other_host(server):
    for path in ("/docs", "/redoc"):
        html = httpx.get(f"{server}{path}").text
        assert "://" not in html.replace("http://127.0.0.1", ""), html
    assert httpx.get(f"{server}/static/apidocs/swagger-ui-bundle.js").status_code == 200
