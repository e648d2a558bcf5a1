"""The CLI's Server-Sent Events parser: the WHATWG rules, whatever the chunking."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from flowmesh_client.sse import ServerSentEvent, SseParser


def parse(*chunks: bytes, last_event_id: str = "") -> tuple[list[ServerSentEvent], SseParser]:
    parser = SseParser(last_event_id)
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events, parser


def test_an_event_with_id_kind_and_data() -> None:
    events, parser = parse(b'id: 7\nevent: step.started\ndata: {"a": 1}\n\n')
    assert events == [ServerSentEvent(event="step.started", data='{"a": 1}', id="7")]
    assert parser.last_event_id == "7"


def test_data_lines_join_with_newlines_and_the_kind_defaults_to_message() -> None:
    events, _ = parse(b"data: one\ndata:two\ndata:  three\ndata\n\n")
    assert events == [ServerSentEvent(event="message", data="one\ntwo\n three\n", id="")]


def test_comments_are_heartbeats_not_events() -> None:
    events, parser = parse(b": keep-alive\n\n:\n\nid: 1\ndata: x\n: inside\n\n: keep-alive\n")
    assert [e.data for e in events] == ["x"]
    assert parser.comments == 4


def test_crlf_cr_and_lf_all_end_lines() -> None:
    stream = b"id: 1\r\nevent: a\r\ndata: x\r\n\r\nid: 2\revent: b\rdata: y\r\rid: 3\ndata: z\n\n"
    events, _ = parse(stream)
    assert [(e.id, e.event, e.data) for e in events] == [
        ("1", "a", "x"),
        ("2", "b", "y"),
        ("3", "message", "z"),
    ]


def test_a_crlf_split_between_chunks_is_one_line_end() -> None:
    # Were the LF read as a second line end, "a" would be dispatched alone.
    events, _ = parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n")
    assert events == [ServerSentEvent(event="message", data="a\nb")]


def test_a_cr_alone_at_a_chunk_end_ends_its_line() -> None:
    events, _ = parse(b"data: a\r", b"\r")
    assert [e.data for e in events] == ["a"]


def test_a_utf8_character_split_between_chunks() -> None:
    data = "données ✓".encode()
    cut = data.index("✓".encode()) + 1
    events, _ = parse(b"data: " + data[:cut], data[cut:] + b"\n\n")
    assert [e.data for e in events] == ["données ✓"]


def test_a_leading_byte_order_mark_is_dropped_once() -> None:
    events, _ = parse(b"\xef\xbb", b"\xbfdata: x\n\n")
    assert [e.data for e in events] == ["x"]
    events, _ = parse(b"data: \xef\xbb\xbfx\n\n")
    assert [e.data for e in events] == ["\ufeffx"]


def test_the_id_persists_until_replaced_and_the_kind_does_not() -> None:
    events, _ = parse(b"id: 1\nevent: a\ndata: x\n\ndata: y\n\nid\ndata: z\n\n")
    assert [(e.id, e.event) for e in events] == [("1", "a"), ("1", "message"), ("", "message")]


def test_an_id_with_a_nul_is_ignored() -> None:
    events, _ = parse(b"id: 1\ndata: x\n\nid: 2\x003\ndata: y\n\n")
    assert [e.id for e in events] == ["1", "1"]


def test_an_event_without_data_is_not_dispatched_but_its_id_counts() -> None:
    events, parser = parse(b"id: 5\nevent: ignored\n\ndata: x\n\n")
    assert events == [ServerSentEvent(event="message", data="x", id="5")]
    events, parser = parse(b"id: 9\n\n")
    assert events == []
    assert parser.last_event_id == "9"


def test_retry_sets_the_reconnection_delay_when_it_is_digits() -> None:
    _, parser = parse(b"retry: 1500\n\n")
    assert parser.retry_ms == 1500
    _, parser = parse(b"retry: 1500\nretry: soon\nretry: \xc2\xb2\n\n")
    assert parser.retry_ms == 1500


def test_unknown_fields_are_ignored() -> None:
    events, _ = parse(b"colour: red\ndata: x\nid : 4\n\n")
    assert events == [ServerSentEvent(event="message", data="x")]


def test_an_event_cut_off_by_the_end_of_the_stream_is_discarded() -> None:
    events, parser = parse(b"id: 1\ndata: x\n\nid: 2\ndata: y\n")
    assert [e.id for e in events] == ["1"]
    assert parser.last_event_id == "1"  # what Last-Event-ID must say on the reconnect


def test_a_parser_resumes_at_the_last_event_id() -> None:
    events, parser = parse(b"data: x\n\n", last_event_id="41")
    assert events == [ServerSentEvent(event="message", data="x", id="41")]
    assert parser.last_event_id == "41"


STREAM = (
    '\ufeffid: 1\r\nevent: run.started\r\ndata: {"k": "é"}\r\n\r\n'
    ": keep-alive\n\n"
    "id: 2\revent: steps\rdata: [1,\rdata: 2]\r\r"
    "retry: 250\nid: 3\ndata: ✓ done\n\n"
    "id: 4\ndata: cut"
).encode()


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    whole, whole_parser = parse(STREAM)
    points = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    events, parser = parse(*chunks)
    assert events == whole
    assert [e.id for e in events] == ["1", "2", "3"]
    assert events[1].data == "[1,\n2]"
    assert (parser.last_event_id, parser.retry_ms, parser.comments) == ("3", 250, 1)
    assert whole_parser.last_event_id == "3"
