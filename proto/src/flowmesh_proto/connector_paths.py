"""A connector's base URL joined with an ``http`` node's relative ``path``. Pure.

The rule for ``path`` (checked by the validator on the text outside templates, and by the
executor again on the rendered path):

- it starts with ``/`` but not ``//`` (so nothing in it can be read as a scheme or an
  authority: no ``http:``, no ``//host``, no ``user@`` before the first ``/``);
- before its ``?`` (the path proper): no ``.`` or ``..`` segment, no backslash, no
  percent-escape of ``/``, ``\\``, ``.``, ``@`` or ``%`` (``%2f``, ``%5c``, ``%2e``,
  ``%40``, ``%25``: a server or proxy that decodes them could read another path, and
  ``%25`` would hide one of those behind a second decoding), no malformed escape;
- nowhere: a fragment (``#``), whitespace or a control character.

Joining appends ``path`` to ``base_url`` without its trailing ``/``
(``https://slack.com/api`` + ``/chat.postMessage``). The executor then checks the joined
URL as parsed (:func:`destination_problem`): its scheme and port are the base URL's, its
host is the base URL's or one of the connector's ``hosts``, and its path is the base URL's
path or below it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["destination_problem", "join", "path_problem"]

_FORBIDDEN_ESCAPE = re.compile(r"%(2[fFeE5]|5[cC]|40)")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def path_problem(path: str) -> str | None:
    """Why ``path`` may not be joined to a connector's base URL, or None when it may."""
    if not path.startswith("/"):
        return "a connector's path starts with '/' (it is joined to the base URL)"
    if path.startswith("//"):
        return "a connector's path cannot start with '//' (that would name another host)"
    if "#" in path:
        return "a connector's path cannot hold a fragment ('#')"
    if _SPACE_OR_CONTROL.search(path):
        return "a connector's path cannot hold spaces or control characters"
    proper = path.partition("?")[0]
    if "\\" in proper:
        return "a connector's path cannot hold a backslash"
    if _ESCAPE.search(proper):
        return "a connector's path holds a malformed percent-escape"
    if _FORBIDDEN_ESCAPE.search(proper):
        return "a connector's path cannot percent-encode '/', '\\', '.', '@' or '%'"
    if any(segment in (".", "..") for segment in proper.split("/")):
        return "a connector's path cannot hold '.' or '..' segments"
    return None


def join(base_url: str, path: str) -> str:
    """``base_url`` without its trailing ``/``, then ``path`` (checked by the caller)."""
    return base_url.rstrip("/") + path


def destination_problem(url: str, base_url: str, hosts: list[str]) -> str | None:
    """Why the joined ``url`` leaves the connector, or None when it stays on it.

    Parsed as a client would: its scheme and port must be ``base_url``'s, its host
    ``base_url``'s or one of ``hosts``, its path ``base_url``'s path or below it, and it
    may hold no user info.
    """
    try:
        got, base = urlsplit(url), urlsplit(base_url)
        port, base_port = got.port, base.port
    except ValueError:
        return "the joined URL is not a valid URL"
    if got.scheme.lower() != base.scheme.lower():
        return "the joined URL's scheme is not the connector's"
    if "@" in got.netloc or got.username is not None:
        return "the joined URL holds user info"
    host = (got.hostname or "").lower()
    if host != (base.hostname or "").lower() and host not in hosts:
        return "the joined URL's host is not one of the connector's hosts"
    if port != base_port:
        return "the joined URL's port is not the connector's"
    prefix = base.path.rstrip("/") + "/"
    if got.path != base.path and not got.path.startswith(prefix):
        return "the joined URL's path is not under the connector's base path"
    if any(segment in (".", "..") for segment in got.path.split("/")):
        return "the joined URL's path holds '.' or '..' segments"
    return None
