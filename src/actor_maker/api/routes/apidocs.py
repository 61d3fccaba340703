"""``/docs`` (Swagger UI) and ``/redoc`` with their scripts served by this server.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank offline or
behind a firewall. The same pages here load the copies that the ``fastapi-offline``
package ships, mounted at ``ASSETS_URL`` (under the open ``/static/`` prefix: they are
public files and hold no data). ``create_app`` turns FastAPI's pages off and mounts
``ASSETS_DIR`` before ``/static``. Both pages answer with a Content-Security-Policy that
allows this server only, so nothing in the bundles (ReDoc's logo comes from its CDN) makes a
request elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

#: Swagger UI and ReDoc as the fastapi-offline package ships them.
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/static/apidocs"
FAVICON = "/static/favicon.svg"
#: This server only; the inline scripts are the pages' own (FastAPI's page templates).
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return _offline(
        request,
        get_swagger_ui_html,
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=FAVICON,
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return _offline(
        request,
        partial(get_redoc_html, with_google_fonts=False),
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=FAVICON,
    )


def _offline(request: Request, render: Callable[..., HTMLResponse], **urls: str) -> HTMLResponse:
    """``render`` (one of FastAPI's documentation pages) for this server's schema, with
    ``urls`` (the page's scripts, styles and icon on this server) under its root path,
    answered with the Content-Security-Policy that keeps the page on this server."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    page = render(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API",
        **{name: f"{root}{url}" for name, url in urls.items()},
    )
    page.headers["Content-Security-Policy"] = CSP
    return page
