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


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return _offline(
        get_swagger_ui_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{FAVICON}",
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return _offline(
        get_redoc_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - API",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{FAVICON}",
            with_google_fonts=False,
        )
    )


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page
