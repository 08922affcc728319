"""`GET /docs` and `GET /redoc`, offline: Swagger UI and ReDoc assets come from a Python package.

FastAPI's default pages load their JavaScript from a CDN, which a machine without internet access
(or a browser behind a strict proxy) cannot reach. The assets of the `fastapi-offline` package
(Swagger UI 5, which renders OpenAPI 3.1, and ReDoc) are served from `/docs/assets/` instead,
through FastAPI's documented `get_swagger_ui_html` and `get_redoc_html` hooks.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

ASSETS_PATH: Final = "/docs/assets"
OPENAPI_URL: Final = "/openapi.json"
TITLE: Final = "predict_buy_app"

router = APIRouter(include_in_schema=False)


def assets_directory() -> Path:
    """Where the installed fastapi-offline package keeps its static files."""
    return Path(str(files("fastapi_offline") / "static"))


def assets_mount() -> Mount:
    """The route serving the documentation assets (GET and HEAD)."""
    return Mount(ASSETS_PATH, app=StaticFiles(directory=assets_directory()), name="docs-assets")


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    """Interactive documentation of the API (Swagger UI), with no request leaving the service."""
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{TITLE} - Swagger UI",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        # Swagger UI would otherwise send the document to an online validator for its badge.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    """The API reference (ReDoc), offline too; it loads no web fonts."""
    return get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=f"{TITLE} - ReDoc",
        redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )
