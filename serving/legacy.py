"""The legacy `{"inputs", "parameters"}` predict contract and the `route` header: what both servers of ours
translate, in one place.

Used by `serving.vllm_routes` (inside vLLM's own process) and `serving.adapter` (in front of TGI). The
standard library only, and no I/O: the vLLM image imports it into the engine's process, whose packages
must stay the image's own. The stream translators take Server-Sent Events as they arrive (`feed`) and
give back events in the contract's shape, so each server drives them from its own transport.
"""

from __future__ import annotations

import json
from typing import Any, Literal

PREDICT_ROUTES = ("/predict", "/generate")
STREAM_ROUTE = "/generate_stream"
HEALTH_ROUTE = "/health"
LEGACY_ROUTES = (*PREDICT_ROUTES, STREAM_ROUTE)
ROUTE_HEADER = "route"
STREAMING_HEADER = "enable-streaming"
MAX_BODY_BYTES = 10 * 1024 * 1024  # OCI's own payload limit

# TGI's generation parameters and what vLLM's completions API calls them.
VLLM_PARAMETERS = {
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repetition_penalty": "repetition_penalty",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "stop": "stop",
}
VLLM_FLAGS = ("do_sample", "return_full_text")  # mapped to temperature 0 and echo
# What makes TGI sample: with `do_sample: false` (or temperature 0) they are left out, so greedy means greedy.
TGI_SAMPLING = ("temperature", "top_p", "top_k", "typical_p")
_EXCERPT = 300

EngineName = Literal["vllm", "tgi"]
Event = dict[str, Any] | str  # an event in the contract's shape, or an SSE comment line (":...")


class RequestProblem(Exception):
    """An answer other than success: HTTP status, message and TGI-style error type."""

    def __init__(self, status: int, message: str, error_type: str, *, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.allow = allow

    def body(self) -> dict[str, str]:
        return {"error": str(self), "error_type": self.error_type}

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow} if self.allow else {}


# -- the request ------------------------------------------------------------------------------------


def route_header_target(route: str) -> str | None:
    """The path a `route` header sends the request to; None when there is none (or it names a legacy
    route: the request is then the legacy payload); RequestProblem 400 when it is not a path."""
    route = route.strip()
    if not route or route.split("?", 1)[0] in LEGACY_ROUTES:
        return None
    if not route.startswith("/") or "://" in route or route.startswith("//"):
        raise RequestProblem(
            400, f"the route header {route!r} is not a path such as /v1/chat/completions", "validation"
        )
    return route


def check_declared_length(declared: str | None, limit: int) -> None:
    """A Content-Length header that is not a size, or over `limit`, is refused before the body is read."""
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        raise RequestProblem(400, f"Content-Length {declared!r} is not a number", "validation") from None
    if length < 0:
        raise RequestProblem(
            400, f"Content-Length {declared!r} is negative; accepted: the body's size", "validation"
        )
    if length > limit:
        raise RequestProblem(413, f"the body is over {limit} bytes", "validation")


def check_body_size(size: int, limit: int) -> None:
    if size > limit:
        raise RequestProblem(413, f"the body is over {limit} bytes", "validation")


def check_body_present(size: int, declared: str | None, chunked: bool) -> None:
    """411 only when there is no body and nothing says how long it is."""
    if not size and declared is None and not chunked:
        raise RequestProblem(
            411, "a body is needed: send Content-Length or Transfer-Encoding: chunked", "validation"
        )


def says_stream(header: str | None) -> bool:
    return (header or "").strip().lower() == "true"


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise RequestProblem(400, "the body is not JSON", "validation") from None
    if not isinstance(body, dict):
        raise RequestProblem(400, "the body must be a JSON object with 'inputs'", "validation")
    return body


def engine_request(
    engine: EngineName, body: dict[str, Any], *, served_model: str | None, stream: bool
) -> tuple[str, dict[str, Any]]:
    """The engine's route and body for a predict request (RequestProblem 400 when it is malformed)."""
    inputs = body.get("inputs")
    if not isinstance(inputs, str) or not inputs:
        raise RequestProblem(400, "'inputs' must be a non-empty string (the prompt)", "validation")
    parameters = body.get("parameters", {})
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise RequestProblem(400, "'parameters' must be an object", "validation")
    if engine == "tgi":
        return ("/generate_stream" if stream else "/generate"), {
            "inputs": inputs,
            "parameters": tgi_parameters(parameters),
        }
    request: dict[str, Any] = {"prompt": inputs, "stream": stream}
    if served_model is not None:
        request = {"model": served_model, **request}
    for name, value in parameters.items():
        if name in VLLM_PARAMETERS:
            if value is not None:
                request[VLLM_PARAMETERS[name]] = value
        elif name == "do_sample":
            continue  # applied below, whatever the order of the keys
        elif name == "return_full_text":
            request["echo"] = bool(value)
        else:
            accepted = ", ".join([*VLLM_PARAMETERS, *VLLM_FLAGS])
            raise RequestProblem(
                400,
                f"parameters.{name} is not supported by the vLLM image; accepted: {accepted}",
                "validation",
            )
    if parameters.get("do_sample") is False:
        request["temperature"] = 0.0
    return "/v1/completions", request


def tgi_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as TGI takes them: the same meaning as on the vLLM image.

    TGI refuses `temperature: 0`, `top_p: 1` and `top_k: 0`, values with one meaning on every engine:
    greedy decoding, no nucleus cut, no top-k cut. And TGI samples whenever any sampling setting is
    present, even with `do_sample: false`. So greedy (temperature 0 or `do_sample: false`) is sent as
    `do_sample: false` alone, and the no-op cuts are left out. Anything else goes through unchanged, and
    TGI's own checks answer for it.
    """
    sent = dict(parameters)
    if _number(sent.get("temperature")) == 0 or sent.get("do_sample") is False:
        for name in TGI_SAMPLING:
            sent.pop(name, None)
        sent["do_sample"] = False
        return sent
    top_p, top_k = _number(sent.get("top_p")), _number(sent.get("top_k"))
    if top_p is not None and top_p >= 1:
        del sent["top_p"]
    if top_k is not None and top_k <= 0:
        del sent["top_k"]
    return sent


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# -- the answer -------------------------------------------------------------------------------------


def engine_problem(status: int, raw: bytes) -> RequestProblem:
    """An engine's error answer: its 4xx stays (the request was refused), anything else becomes 502."""
    message = error_message(raw)
    if 400 <= status < 500 and status != 424:  # TGI answers 424 when generation itself failed
        return RequestProblem(status, message, "overloaded" if status == 429 else "validation")
    return RequestProblem(502, f"the engine failed ({status}): {message}", "engine")


def error_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return excerpt(raw) or "no message"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])  # vLLM (newer): {"error": {"message": ...}}
        if isinstance(error, str):
            return error  # TGI: {"error": ..., "error_type": ...}
        if isinstance(data.get("message"), str):
            return str(data["message"])  # vLLM (older): {"object": "error", "message": ...}
        if isinstance(data.get("detail"), str):
            return str(data["detail"])
    return excerpt(raw)


def generated_text(engine: EngineName, raw: bytes) -> dict[str, Any]:
    """The engine's non-streaming answer in the contract's shape, `{"generated_text": ...}` (502 when it
    is not what the engine should have sent)."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise RequestProblem(
            502, f"the engine answered with something not JSON: {excerpt(raw)}", "engine"
        ) from None
    if engine == "tgi":
        if isinstance(data, dict) and isinstance(data.get("generated_text"), str):
            return data
    else:
        text = vllm_text(data)
        if text is not None:
            return {"generated_text": text}
    raise RequestProblem(502, f"the engine answered without generated text: {excerpt(raw)}", "engine")


def vllm_text(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    text = choices[0].get("text")
    return text if isinstance(text, str) else None


def engine_error(message: str) -> dict[str, Any]:
    """The stream's last event when the engine's side fails."""
    return {"error": message, "error_type": "engine"}


def excerpt(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def event_bytes(event: Event) -> bytes:
    """One event on the wire: a comment as it came, an object as one `data:` line (`json.dumps`'s bytes;
    a plain token event, one per generated piece, is written without a generic `dumps` of the object)."""
    if isinstance(event, str):
        return f"{event}\n\n".encode()
    token = event.get("token")
    if (
        tuple(event) == _EVENT_KEYS
        and event["generated_text"] is None
        and type(token) is dict
        and tuple(token) == _TOKEN_KEYS
        and token["special"] is False
        and type(token["text"]) is str
    ):
        return _TOKEN_HEAD + json.dumps(token["text"]).encode() + _TOKEN_TAIL
    return f"data: {json.dumps(event)}\n\n".encode()


_EVENT_KEYS = ("token", "generated_text")
_TOKEN_KEYS = ("text", "special")
_TOKEN_HEAD = b'data: {"token": {"text": '
_TOKEN_TAIL = b', "special": false}, "generated_text": null}\n\n'


# -- the stream -------------------------------------------------------------------------------------


class SseParser:
    """Server-Sent Events in, each event's data out (comment lines as ':...' strings), as bytes arrive."""

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        buffer = self._pending + chunk if self._pending else chunk
        if b"\r" not in buffer:
            lines = buffer.split(b"\n")
            self._pending = lines.pop()
            return self._lines(lines)
        # A CR at the end may be the first half of a CRLF: keep it for the next chunk.
        cut = len(buffer) - 1 if buffer.endswith(b"\r") else len(buffer)
        lines = buffer[:cut].replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._pending = lines.pop() + buffer[cut:]
        return self._lines(lines)

    def close(self) -> list[str]:
        """What is left once the stream has ended (an event without its blank line still counts)."""
        rest, self._pending = self._pending.rstrip(b"\r"), b""
        found = self._lines([rest] if rest else [])
        if self._data:
            found.append("\n".join(self._data))
            self._data = []
        return found

    def _lines(self, lines: list[bytes]) -> list[str]:
        found: list[str] = []
        for raw in lines:
            text = raw.decode("utf-8", errors="replace")
            if not text:
                if self._data:
                    found.append("\n".join(self._data))
                    self._data = []
            elif text.startswith(":"):
                found.append(text)
            elif text.startswith("data:"):
                value = text[5:]
                self._data.append(value[1:] if value.startswith(" ") else value)
        return found


class VllmEvents:
    """vLLM's `/v1/completions` stream to TGI's `generate_stream` shape: one event per piece of text, then
    one whose token is an empty special token and whose `generated_text` is the whole text."""

    def __init__(self) -> None:
        self.done = False
        self._pieces: list[str] = []

    def feed(self, data: str) -> list[Event]:
        if self.done:
            return []
        if data.startswith(":"):
            return [data]
        if data == "[DONE]":
            self.done = True
            return [{"token": {"text": "", "special": True}, "generated_text": "".join(self._pieces)}]
        try:
            chunk = json.loads(data)
        except ValueError:
            self.done = True
            return [engine_error(f"the engine sent an event that is not JSON: {excerpt(data.encode())}")]
        if isinstance(chunk, dict) and ("error" in chunk or chunk.get("object") == "error"):
            self.done = True
            return [engine_error(f"the engine failed: {error_message(data.encode())}")]
        text = vllm_text(chunk)
        if not text:
            return []
        self._pieces.append(text)
        return [{"token": {"text": text, "special": False}, "generated_text": None}]

    def end(self) -> list[Event]:
        if self.done:
            return []
        self.done = True
        return [engine_error("the engine closed the stream before it finished")]


class TgiEvents:
    """TGI's `generate_stream` events, passed on as they are, ending at the one with `generated_text`."""

    def __init__(self) -> None:
        self.done = False

    def feed(self, data: str) -> list[Event]:
        if self.done:
            return []
        if data.startswith(":"):
            return [data]
        try:
            event = json.loads(data)
        except ValueError:
            self.done = True
            return [engine_error(f"the engine sent an event that is not JSON: {excerpt(data.encode())}")]
        if not isinstance(event, dict):
            return []
        if isinstance(event.get("generated_text"), str) or event.get("error"):
            self.done = True
        return [event]

    def end(self) -> list[Event]:
        if self.done:
            return []
        self.done = True
        return [engine_error("the engine closed the stream before it finished")]


def stream_translator(engine: EngineName) -> VllmEvents | TgiEvents:
    return VllmEvents() if engine == "vllm" else TgiEvents()
