"""Fake inference: a model deployment's predict URLs, and a serving container's own routes.

OCI (signed, one per scripted deployment, see modeldeployments.py):
    POST /{modelDeploymentId}/predict                     -> {"generated_text": ...}
    POST /{modelDeploymentId}/predictWithResponseStream   -> Server-Sent Events (409 if the engine can't)
A container on localhost (unsigned; `fake.service(Inference).container` is its Engine):
    POST /predict           the vLLM sample's contract; streams when the body says "stream": true
    POST /generate          TGI: {"generated_text": ...} ("stream" is ignored, as TGI does)
    POST /generate_stream   TGI: Server-Sent Events
OCI's OpenAI routing (`predict_api_specification: openai`, signed), as the front door does it:
    POST|GET /{id}/predict/{suffix}                   -> the container's `{suffix}` (e.g. /v1/chat/completions)
    POST     /{id}/predictWithResponseStream/{suffix} -> the same, which must answer an event stream (else 409)
    POST     /{id}/predict with a `route: /v1/...` header -> the container's `route` (or, for a deployment
             with `maps_route_header = False`, the container's `/predict`, header and all)
Only suffixes on the `openai` allow-list or the deployment's custom endpoints are routed (else 404). The
container is the deployment's `upstream` (a real server, e.g. the adapter in front of a fake engine) when
set, else the Engine answering in OpenAI's shapes.
Events are TGI's generate_stream shape: `data:{"token": {"text", "special"}, "generated_text": null}` per
token, then an end-of-sequence special token whose event carries the whole `generated_text`.
Faults from the core apply by operation: e.g. `fake.faults.burst(503, ops=["Predict"], times=1)` for
"503 then 200", or `Fault(kind="status", status=401, code="NotAuthenticated", ops=...)`.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from domain.container_env import CUSTOM_HTTP_ENDPOINTS, OPENAI_ALLOW_LIST
from tests.fakeoci.core import HttpError, Request, Response, Service, json_response, route
from tests.fakeoci.modeldeployments import Deployment, Engine, ModelDeployments

ROUTED = OPENAI_ALLOW_LIST | {suffix for suffix, _ in CUSTOM_HTTP_ENDPOINTS}
SERVED_MODEL = "served-model"
# What a proxy must not copy from one hop to the next.
_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "authorization", "date"}


class Inference(Service):
    name = "inference"
    prefix = ""

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.container = Engine()

    # -- OCI model deployment endpoints
    @route("POST", "/{modelDeploymentId}/predict", op="Predict")
    def predict(self, req: Request) -> Response:
        routed = (req.headers.get("route") or "").strip()
        if routed:
            deployment = self._active_deployment(req)
            if deployment.maps_route_header or not deployment.upstream:
                return self._openai(req, routed, streaming_route=False)
            deployment.engine.seen.append((req.method, req.path, "/predict", dict(req.headers.items())))
            return _forward(deployment.upstream, req, "/predict")
        engine = self._active_engine(req)
        body = _contract(req, engine)
        if body.get("stream") is True and engine.streams:
            return _stream(engine)
        return json_response(200, {"generated_text": engine.completion})

    @route("POST", "/{modelDeploymentId}/predictWithResponseStream", op="PredictWithResponseStream")
    def predict_stream(self, req: Request) -> Response:
        engine = self._active_engine(req)
        _contract(req, engine)
        if not engine.streams:
            raise HttpError(
                409,
                "ExternalServerIncorrectState",
                "Unexpected nonstreaming response detected from the deployed model.",
            )
        return _stream(engine)

    @route("POST", "/{modelDeploymentId}/predict/{suffix+}", op="PredictOpenAI")
    def predict_openai(self, req: Request) -> Response:
        return self._openai(req, "/" + req.params["suffix"], streaming_route=False)

    @route("GET", "/{modelDeploymentId}/predict/{suffix+}", op="PredictOpenAIGet")
    def predict_openai_get(self, req: Request) -> Response:
        return self._openai(req, "/" + req.params["suffix"], streaming_route=False)

    @route("POST", "/{modelDeploymentId}/predictWithResponseStream/{suffix+}", op="PredictStreamOpenAI")
    def predict_stream_openai(self, req: Request) -> Response:
        return self._openai(req, "/" + req.params["suffix"], streaming_route=True)

    def _active_deployment(self, req: Request) -> Deployment:
        deployment = self.fake.service(ModelDeployments).get(req.params["modelDeploymentId"])
        if deployment.state not in ("ACTIVE", "UPDATING"):  # an update in place keeps serving
            raise HttpError(503, "ServiceUnavailable", "Model server unavailable.")
        return deployment

    def _active_engine(self, req: Request) -> Engine:
        return self._active_deployment(req).engine

    def _openai(self, req: Request, suffix: str, *, streaming_route: bool) -> Response:
        """The container's answer at `suffix`, reached as OCI's OpenAI routing reaches it."""
        deployment = self._active_deployment(req)
        path = suffix.split("?", 1)[0]
        if path not in ROUTED:
            raise HttpError(404, "NotAuthorizedOrNotFound", f"{path} is not an endpoint of this deployment")
        deployment.engine.seen.append((req.method, req.path, path, dict(req.headers.items())))
        query = req.target.split("?", 1)[1] if "?" in req.target else ""
        target = f"{suffix}?{query}" if query and "?" not in suffix else suffix
        if deployment.upstream:
            response = _forward(deployment.upstream, req, target)
        else:
            response = _openai_answer(deployment.engine, req, path)
        streamed = (response.headers.get("content-type") or "").startswith("text/event-stream")
        if streaming_route and not streamed:
            raise HttpError(
                409,
                "ExternalServerIncorrectState",
                "Unexpected nonstreaming response detected from the deployed model.",
            )
        return response

    # -- a serving container's own routes
    @route("POST", "/predict", op="ContainerPredict", signed=False)
    def container_predict(self, req: Request) -> Response:
        body = _contract(req, self.container)
        if body.get("stream") is True and self.container.streams:
            return _stream(self.container)
        return json_response(200, {"generated_text": self.container.completion})

    @route("POST", "/generate", op="ContainerGenerate", signed=False)
    def container_generate(self, req: Request) -> Response:
        _contract(req, self.container, tgi=True)
        return json_response(200, {"generated_text": self.container.completion})

    @route("POST", "/generate_stream", op="ContainerGenerateStream", signed=False)
    def container_generate_stream(self, req: Request) -> Response:
        _contract(req, self.container, tgi=True)
        return _stream(self.container)


def _contract(req: Request, engine: Engine, *, tgi: bool | None = None) -> dict[str, Any]:
    """The request body, checked as the engine checks it (TGI: 422 and its own messages)."""
    tgi = engine.name == "tgi" if tgi is None else tgi
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
        raise HttpError(422, "UnprocessableEntity", "the body needs 'inputs' (a string)")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise HttpError(422, "UnprocessableEntity", "'parameters' must be an object")
    temperature, top_p = params.get("temperature"), params.get("top_p")
    if tgi and temperature is not None and temperature <= 0:
        raise HttpError(
            422, "UnprocessableEntity", "Input validation error: `temperature` must be strictly positive"
        )
    if tgi and top_p is not None and not 0 < top_p < 1:
        raise HttpError(422, "UnprocessableEntity", "Input validation error: `top_p` must be > 0.0 and < 1.0")
    if temperature is not None and temperature < 0:
        raise HttpError(400, "BadRequest", "temperature must be non-negative")
    if top_p is not None and not 0 < top_p <= 1:
        raise HttpError(400, "BadRequest", "top_p must be in (0, 1]")
    engine.received.append(body)
    return body


def _stream(engine: Engine) -> Response:
    return Response(
        200, {"content-type": "text/event-stream", "cache-control": "no-cache"}, chunks=_events(engine)
    )


def _events(engine: Engine) -> Iterator[bytes]:
    engine.stream_done.clear()
    for index, text in enumerate(engine.tokens):
        event = {
            "index": index,
            "token": {"id": index, "text": text, "special": False},
            "generated_text": None,
        }
        yield f"data:{json.dumps(event)}\n\n".encode()
        if index == 0 and engine.hold_after_first is not None:
            engine.hold_after_first.wait(timeout=5)
    end = {
        "index": len(engine.tokens),
        "token": {"id": 2, "text": "</s>", "special": True},
        "generated_text": engine.completion,
    }
    yield f"data:{json.dumps(end)}\n\n".encode()
    engine.stream_done.set()


def _forward(upstream: str, req: Request, target: str) -> Response:
    """The request, unsigned and unchanged otherwise, to the container; its answer relayed as it comes."""
    where = urlsplit(upstream)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=10)
    headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP}
    connection.request(req.method, target, body=req.body if req.method != "GET" else None, headers=headers)
    answer = connection.getresponse()
    kept = {k.lower(): v for k, v in answer.getheaders() if k.lower() not in _HOP}

    def relay() -> Iterator[bytes]:
        try:
            while chunk := answer.read1(65536):
                yield chunk
        finally:
            connection.close()

    return Response(answer.status, kept, chunks=relay())


def _openai_answer(engine: Engine, req: Request, path: str) -> Response:
    """The Engine as vLLM's OpenAI server answers: /v1/models, /v1/chat/completions, /v1/completions."""
    if path == "/v1/models":
        return json_response(200, {"object": "list", "data": [{"id": SERVED_MODEL, "object": "model"}]})
    body = req.json()
    if not isinstance(body, dict) or body.get("model") != SERVED_MODEL:
        raise HttpError(
            404,
            "NotFound",
            f"The model `{body.get('model') if isinstance(body, dict) else None}` does not exist.",
        )
    chat = path == "/v1/chat/completions"
    if chat and not isinstance(body.get("messages"), list):
        raise HttpError(400, "BadRequest", "'messages' is required")
    if not chat and not isinstance(body.get("prompt"), str):
        raise HttpError(400, "BadRequest", "'prompt' is required")
    engine.received.append(body)
    if body.get("stream") is True:
        return Response(200, {"content-type": "text/event-stream"}, chunks=_openai_events(engine, chat))
    choice: dict[str, Any] = (
        {"index": 0, "message": {"role": "assistant", "content": engine.completion}, "finish_reason": "stop"}
        if chat
        else {"index": 0, "text": engine.completion, "finish_reason": "stop"}
    )
    return json_response(
        200,
        {
            "id": "fake-1",
            "object": "chat.completion" if chat else "text_completion",
            "created": 0,
            "model": SERVED_MODEL,
            "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": len(engine.tokens), "total_tokens": 6},
        },
    )


def _openai_events(engine: Engine, chat: bool) -> Iterator[bytes]:
    engine.stream_done.clear()
    for index, text in enumerate([*engine.tokens, None]):
        part: dict[str, Any] = {"delta": {"content": text} if text else {}} if chat else {"text": text or ""}
        choice = {"index": 0, **part, "finish_reason": None if text else "stop"}
        event = {
            "id": "fake-1",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": 0,
            "model": SERVED_MODEL,
            "choices": [choice],
        }
        yield f"data: {json.dumps(event)}\n\n".encode()
        if index == 0 and engine.hold_after_first is not None:
            engine.hold_after_first.wait(timeout=5)
    yield b"data: [DONE]\n\n"
    engine.stream_done.set()
