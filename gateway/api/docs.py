"""``/docs`` served entirely from the installed package, for networks without the internet.

FastAPI's default page loads Swagger UI from a CDN, which leaves it blank on the bureau's
offline network. The ``swagger-ui-bundle`` distribution ships Swagger UI's files; we serve the
three the page needs (not the whole dist: its sample ``index.html`` fetches the petstore).
ReDoc is not shipped there, so it is not offered.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from gateway.api.problems import ProblemError

ASSETS_URL = "/static/swagger"
# Named with their types: the platform's MIME table varies (.js is not always text/javascript).
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def mount_docs(app: FastAPI, docs_url: str = "/docs") -> None:
    """Add *docs_url* and its assets to *app* (built with ``docs_url=None``)."""
    root = Path(swagger_ui_path)
    files = {name: root / name for name in _ASSETS}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise RuntimeError(f"swagger-ui-bundle is missing {', '.join(missing)}")

    @app.get(docs_url, include_in_schema=False)
    async def _docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        )

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    async def _asset(name: str) -> FileResponse:
        path = files.get(name)
        if path is None:
            raise ProblemError(404, "no such file", "not_found")
        return FileResponse(
            path, media_type=_ASSETS[name], headers={"Cache-Control": "public, max-age=86400"}
        )
