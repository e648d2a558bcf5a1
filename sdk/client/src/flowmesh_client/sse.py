"""A Server-Sent Events parser (the WHATWG ``text/event-stream`` rules). Pure: bytes in,
events out; no I/O.

Feed it the body's chunks as they arrive, cut anywhere (inside a line, a CRLF or a UTF-8
character): it returns the events each chunk completes. Lines end with CRLF, LF or CR; a
blank line dispatches the event; ``data`` lines join with LF; ``:`` starts a comment (a
heartbeat); an ``id`` persists until another replaces it and is what ``Last-Event-ID``
must carry on a reconnect; ``retry`` sets the reconnection delay. An event cut off by the
end of the stream is discarded, as the rules say: only a blank line completes one.
"""

from __future__ import annotations

import codecs
import re

import msgspec

_END_OF_LINE = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


class ServerSentEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One dispatched event. ``id`` is the stream's last event id when it was dispatched."""

    event: str  # "message" when the stream named none
    data: str
    id: str = ""


class SseParser:
    """One connection's stream; start the next connection's parser at ``last_event_id``."""

    def __init__(self, last_event_id: str = "") -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self.comments = 0  # heartbeats seen
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line = ""  # the unfinished last line
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF completes a CRLF
        self._started = False
        self._id = last_event_id
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events ``chunk`` completes, in order."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix(_BOM)
        if self._skip_lf and text:
            self._skip_lf = False
            text = text.removeprefix("\n")
        buffer = self._line + text
        events: list[ServerSentEvent] = []
        start = 0
        for match in _END_OF_LINE.finditer(buffer):
            if match.group() == "\r" and match.end() == len(buffer):
                self._skip_lf = True
            event = self._process(buffer[start : match.start()])
            if event is not None:
                events.append(event)
            start = match.end()
        self._line = buffer[start:]
        return events

    def _process(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        match name:
            case "event":
                self._event = value
            case "data":
                self._data.append(value)
            case "id":
                if "\0" not in value:
                    self._id = value
            case "retry":
                if value.isascii() and value.isdigit():
                    self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(
            event=self._event or "message", data="\n".join(self._data), id=self.last_event_id
        )
        self._event, self._data = "", []
        return event
