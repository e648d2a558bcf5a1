"""The console's pages (DESIGN section 14): static files shipped in this package, served at
``/console/`` on the API's origin.

No build step and no CDN: ``console_ui/`` holds plain HTML, ES modules and CSS, read once
at start into memory. Only the files named in :data:`FILES` are served, so no path from a
request ever reaches the file system. Every answer carries a strict Content-Security-Policy
(scripts and styles from this origin only, no inline script, no framing) and its
companions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

PREFIX = "/console/"
#: The files of the console and their content types; anything else under /console/ is 404.
FILES = {
    "index.html": "text/html",
    "style.css": "text/css",
    "app.js": "text/javascript",
    "api.js": "text/javascript",
    "dom.js": "text/javascript",
    "signin.js": "text/javascript",
    "workflows.js": "text/javascript",
    "dag.js": "text/javascript",
    "admin.js": "text/javascript",
    "keys.js": "text/javascript",
    "secrets.js": "text/javascript",
    "audit.js": "text/javascript",
    "workflow.js": "text/javascript",
    "versions.js": "text/javascript",
    "editor.js": "text/javascript",
    "lines.js": "text/javascript",
    "diff.js": "text/javascript",
    "importer.js": "text/javascript",
    "fold.js": "text/javascript",
    "runs.js": "text/javascript",
    "run.js": "text/javascript",
    "timeline.js": "text/javascript",
    "schema.js": "text/javascript",
    "form.js": "text/javascript",
    "connectors.js": "text/javascript",
    "connector.js": "text/javascript",
    "connectorform.js": "text/javascript",
    "catalog.js": "text/javascript",
    "entry.js": "text/javascript",
    "nodebuilder.js": "text/javascript",
    "nodepicker.js": "text/javascript",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Small files, checked again on every load: a new gateway's pages are seen at once.
    "Cache-Control": "no-cache",
}


def read_files() -> dict[str, bytes]:
    """The console's files, by name, from the installed package."""
    folder = resources.files("flowmesh_gateway") / "console_ui"
    return {name: (folder / name).read_bytes() for name in FILES}


def add_console_pages(app: web.Application) -> None:
    """Serve the console: ``/console`` redirects to ``/console/``, which is ``index.html``."""
    files = read_files()

    def page(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        body, content_type = files[name], FILES[name]

        async def answer(_: web.Request) -> web.Response:
            return web.Response(
                body=body, content_type=content_type, charset="utf-8", headers=SECURITY_HEADERS
            )

        return answer

    async def to_index(_: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect(PREFIX, headers=SECURITY_HEADERS)

    app.router.add_get(PREFIX.rstrip("/"), to_index)
    app.router.add_get(PREFIX, page("index.html"))
    for name in FILES:
        app.router.add_get(PREFIX + name, page(name))
