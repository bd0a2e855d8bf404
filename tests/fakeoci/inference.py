"""Fake inference: a model deployment's predict URLs, and a serving container's own routes.

OCI (signed, one per scripted deployment, see modeldeployments.py):
    POST /{modelDeploymentId}/predict                     -> {"generated_text": ...}
    POST /{modelDeploymentId}/predictWithResponseStream   -> Server-Sent Events (409 if the engine can't)
A container on localhost (unsigned; `fake.service(Inference).container` is its Engine):
    POST /predict           the vLLM sample's contract; streams when the body says "stream": true
    POST /generate          TGI: {"generated_text": ...} ("stream" is ignored, as TGI does)
    POST /generate_stream   TGI: Server-Sent Events
Events are TGI's generate_stream shape: `data:{"token": {"text", "special"}, "generated_text": null}` per
token, then an end-of-sequence special token whose event carries the whole `generated_text`.
Faults from the core apply by operation: e.g. `fake.faults.burst(503, ops=["Predict"], times=1)` for
"503 then 200", or `Fault(kind="status", status=401, code="NotAuthenticated", ops=...)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.fakeoci.core import HttpError, Request, Response, Service, json_response, route
from tests.fakeoci.modeldeployments import Engine, ModelDeployments


class Inference(Service):
    name = "inference"
    prefix = ""

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.container = Engine()

    # -- OCI model deployment endpoints
    @route("POST", "/{modelDeploymentId}/predict", op="Predict")
    def predict(self, req: Request) -> Response:
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

    def _active_engine(self, req: Request) -> Engine:
        deployment = self.fake.service(ModelDeployments).get(req.params["modelDeploymentId"])
        if deployment.state != "ACTIVE":
            raise HttpError(503, "ServiceUnavailable", "Model server unavailable.")
        return deployment.engine

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
