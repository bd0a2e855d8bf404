"""The shared translation (serving/legacy.py) on its own: the SSE parser across chunk boundaries and line
endings, and events written exactly as `json.dumps` writes them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from serving.legacy import SseParser, TgiEvents, VllmEvents, event_bytes


@pytest.mark.parametrize(
    "event",
    [
        {"token": {"text": " tok", "special": False}, "generated_text": None},
        {"token": {"text": 'quote " back \\ slash \n é 🙂 \u2028', "special": False}, "generated_text": None},
        {"token": {"text": "", "special": True}, "generated_text": "all"},
        {"token": {"text": "x", "special": False}, "generated_text": "x"},
        {
            "index": 1,
            "token": {"id": 5, "text": "x", "logprob": -0.1, "special": False},
            "generated_text": None,
        },
        {"token": {"special": False, "text": "order"}, "generated_text": None},
        {"error": "boom", "error_type": "engine"},
    ],
)
def test_an_event_is_written_as_json_dumps_writes_it(event: dict[str, Any]) -> None:
    assert event_bytes(event) == f"data: {json.dumps(event)}\n\n".encode()


def test_comments_pass_as_they_came() -> None:
    assert event_bytes(": keep-alive") == b": keep-alive\n\n"


STREAM = (
    b'data: {"choices": [{"text": "Hel"}]}\r\n\r\n'
    b": ping\n\n"
    b'data: {"choices": [{"text": "lo"}]}\r\r'
    b"event: x\ndata: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(STREAM)])
def test_the_parser_gives_the_same_events_however_the_bytes_are_cut(size: int) -> None:
    parser, translator = SseParser(), VllmEvents()
    found: list[Any] = []
    for start in range(0, len(STREAM), size):
        for data in parser.feed(STREAM[start : start + size]):
            found += translator.feed(data)
    for data in parser.close():
        found += translator.feed(data)
    found += translator.end()
    assert found == [
        {"token": {"text": "Hel", "special": False}, "generated_text": None},
        ": ping",
        {"token": {"text": "lo", "special": False}, "generated_text": None},
        {"token": {"text": "", "special": True}, "generated_text": "Hello"},
    ]


def test_a_stream_cut_short_ends_with_an_error_event() -> None:
    parser, translator = SseParser(), TgiEvents()
    found = [
        e
        for d in parser.feed(b'data:{"token": {"text": "a"}, "generated_text": null}')
        for e in translator.feed(d)
    ]
    found += [e for d in parser.close() for e in translator.feed(d)] + translator.end()
    assert found[0]["token"]["text"] == "a"
    assert found[-1] == {"error": "the engine closed the stream before it finished", "error_type": "engine"}
