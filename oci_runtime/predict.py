"""Call a deployed model: OpenAI chat or completions, or the legacy predict contract; signed, retried,
optionally streamed.

One client for the CLI (`llmstack predict`), the readiness check and the chat app. `api` picks the wire:
- `chat` / `completions`: OpenAI's `/v1/chat/completions` / `/v1/completions`, reached as OCI's OpenAI
  routing expects (`.../predict/v1/...`; streams on `.../predictWithResponseStream/v1/...`), or at a
  local container's `/v1/...`. The model name is the one the server lists at `/v1/models` (vLLM checks it).
- `legacy`: the contract below.

The legacy contract is the one both serving images speak (the vLLM sample's `/predict` and TGI's `/generate`):
`{"inputs": prompt, "parameters": {"max_new_tokens", "temperature", "top_p"}}` -> `{"generated_text"}`
(temperature 0 and top_p 1 go in the form TGI accepts: see `wire_parameters`).

Streaming sends the same body plus `"stream": true` and reads Server-Sent Events in TGI's
`generate_stream` shape (`data: {"token": {"text": ...}, "generated_text": null}`, the last event carrying
`generated_text`). Where the stream goes:
- an OCI URL (`https://modeldeployment.<region>.oci.customer-oci.com/<ocid>/predict`): its sibling
  `.../predictWithResponseStream`; OCI forwards that call to the container's predict route, which is why
  the body asks for a stream;
- a local container at `.../generate` (TGI): TGI's own `.../generate_stream`;
- a local container at any other route (the serving adapter's `/predict`): the same route, exactly the
  call OCI would make on it.
A server that answers a stream request with plain JSON is read as one chunk, so streaming never fails
just because a server cannot stream.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import SplitResult, urlsplit, urlunsplit

import oci
import requests

from domain.errors import UserError
from oci_runtime.auth import Auth, credentials
from oci_runtime.retry import Backoff, is_retryable, retry_call

OCI_PREDICT_ROUTE = "/predict"
OCI_STREAM_ROUTE = "/predictWithResponseStream"
TGI_PREDICT_ROUTE = "/generate"
TGI_STREAM_ROUTE = "/generate_stream"
OCI_HOST_PREFIX = "modeldeployment."
OCI_DEPLOYMENT_OCID = "ocid1.datasciencemodeldeployment."
CONNECT_TIMEOUT_S = 10.0
_BODY_EXCERPT = 200

OPENAI_PREFIX = "/v1"
OPENAI_ROUTE: dict[str, str] = {"chat": "/chat/completions", "completions": "/completions"}

OnRetry = Callable[[int, BaseException, float], None]
Api = Literal["chat", "completions", "legacy"]
APIS: tuple[str, ...] = get_args(Api)
Message = dict[str, str]


class InvalidParameter(UserError, ValueError):
    """A generation parameter out of range; `name` is the parameter, as the request body spells it."""

    def __init__(self, name: str, value: object, accepted: str) -> None:
        super().__init__(f"{name} must be {accepted}, got {value!r}")
        self.name = name
        self.value = value


@dataclass(frozen=True, kw_only=True)
class GenerationParams:
    """Sampling settings sent with every request; checked here so a bad value never leaves the machine."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise InvalidParameter("max_new_tokens", self.max_new_tokens, "a whole number of at least 1")
        if self.max_new_tokens < 1:
            raise InvalidParameter("max_new_tokens", self.max_new_tokens, "a whole number of at least 1")
        if not _is_number(self.temperature) or not self.temperature >= 0:
            raise InvalidParameter("temperature", self.temperature, "a number of at least 0")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            raise InvalidParameter("top_p", self.top_p, "a number in (0, 1]")

    def as_json(self) -> dict[str, int | float]:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class PredictError(UserError):
    """The endpoint refused or failed a request: one line with the status, what it means, what to do."""

    exit_code = 1

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class _HttpStatus(Exception):
    """A non-2xx answer, carrying `status` so the shared retry policy can judge it."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body


@dataclass(frozen=True)
class Endpoints:
    predict: str
    stream: str
    oci: bool


def endpoints_for(url: str) -> Endpoints:
    """The predict URL and its streaming sibling for a URL as the stack exports it or a local container's."""
    parts = _checked_url(url)
    path = parts.path.rstrip("/")
    for suffix in (OCI_PREDICT_ROUTE, OCI_STREAM_ROUTE):
        if path.endswith(suffix + OPENAI_PREFIX):  # the stack's openaiBaseUrl
            path = path[: -len(OPENAI_PREFIX)]
    # A private endpoint has its own host name; the deployment's OCID in the path still says "OCI".
    oci = (parts.hostname or "").startswith(OCI_HOST_PREFIX) or f"/{OCI_DEPLOYMENT_OCID}" in path

    def at(route: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, route, parts.query, ""))

    for predict_route, stream_route in (
        (OCI_PREDICT_ROUTE, OCI_STREAM_ROUTE),
        (TGI_PREDICT_ROUTE, TGI_STREAM_ROUTE),
    ):
        if path.endswith(stream_route):
            base = path[: -len(stream_route)]
            return Endpoints(at(base + predict_route), at(path), oci)
    if oci:
        base = path[: -len(OCI_PREDICT_ROUTE)] if path.endswith(OCI_PREDICT_ROUTE) else path
        return Endpoints(at(base + OCI_PREDICT_ROUTE), at(base + OCI_STREAM_ROUTE), oci)
    if path.endswith(TGI_PREDICT_ROUTE):
        return Endpoints(at(path), at(path[: -len(TGI_PREDICT_ROUTE)] + TGI_STREAM_ROUTE), oci)
    route = path or OCI_PREDICT_ROUTE
    return Endpoints(at(route), at(route), oci)


def openai_bases(endpoints: Endpoints) -> tuple[str, str]:
    """The OpenAI base URLs (ending in /v1) for plain calls and for streams.

    OCI: `.../predict/v1` and `.../predictWithResponseStream/v1` (the front door strips the prefix, the
    container gets `/v1/...`); a local container: its root's `/v1` for both.
    """
    if endpoints.oci:
        return endpoints.predict + OPENAI_PREFIX, endpoints.stream + OPENAI_PREFIX
    parts = urlsplit(endpoints.predict)
    path = parts.path.rstrip("/")
    for route in (OCI_PREDICT_ROUTE, TGI_PREDICT_ROUTE):
        if path.endswith(route):
            path = path[: -len(route)]
            break
    base = urlunsplit((parts.scheme, parts.netloc, path + OPENAI_PREFIX, "", ""))
    return base, base


def _checked_url(url: str) -> SplitResult:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"endpoint {url!r} is not an http(s) URL; pass the predict URL the stack exports")
    return parts


def request_signer(auth: Auth) -> Any | None:
    """What signs a plain HTTP request for `auth` (a `requests` auth object), or None for `none`."""

    creds = credentials(auth)
    if creds.signer is not None or auth.mode == "none":
        return creds.signer
    config = creds.config
    missing = [key for key in ("tenancy", "user", "fingerprint") if not config.get(key)]
    if not config.get("key_file") and not config.get("key_content"):
        missing.append("key_file")
    if missing:
        raise UserError(f"profile {auth.profile!r} in {auth.config_file} lacks {', '.join(missing)}")
    try:
        return oci.signer.Signer(
            tenancy=config["tenancy"],
            user=config["user"],
            fingerprint=config["fingerprint"],
            private_key_file_location=config.get("key_file"),
            pass_phrase=config.get("pass_phrase"),
            private_key_content=config.get("key_content"),
        )
    except (OSError, ValueError, TypeError, oci.exceptions.InvalidPrivateKey) as exc:
        raise UserError(f"cannot load the API key of profile {auth.profile!r}: {exc}") from exc


class PredictClient:
    """Calls one deployment. Thread-safe: it keeps no connection state between calls."""

    def __init__(
        self,
        endpoint: str,
        *,
        auth: Auth = Auth(),
        timeout_s: float = 120.0,
        backoff: Backoff = Backoff(),
        stream_endpoint: str | None = None,
        on_retry: OnRetry | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        api: Api = "legacy",
        model: str | None = None,
    ) -> None:
        if api not in APIS:
            raise UserError(f"api {api!r} is not one of {', '.join(APIS)}")
        if not timeout_s > 0:
            raise UserError(f"timeout must be a positive number of seconds, got {timeout_s!r}")
        found = endpoints_for(endpoint)
        if stream_endpoint is not None:
            found = Endpoints(found.predict, _checked_url(stream_endpoint).geturl(), found.oci)
        self.endpoints = found
        self.auth = auth
        self.timeout_s = timeout_s
        self.backoff = backoff
        self._on_retry = on_retry
        self._sleep = sleep
        self._clock = clock  # what the backoff's total time is measured on (a caller's deadline clock)
        self._signer = request_signer(auth)
        self.api: Api = api
        self._model = model

    @property
    def predict_url(self) -> str:
        """Where a plain (not streamed) call goes."""
        if self.api == "legacy":
            return self.endpoints.predict
        return openai_bases(self.endpoints)[0] + OPENAI_ROUTE[self.api]

    @property
    def stream_url(self) -> str:
        """Where a streamed call goes."""
        if self.api == "legacy":
            return self.endpoints.stream
        return openai_bases(self.endpoints)[1] + OPENAI_ROUTE[self.api]

    def predict(
        self, prompt: str, params: GenerationParams = GenerationParams(), *, system: str | None = None
    ) -> str:
        """The completion for `prompt` (the whole text, once the model has finished). `system` is the
        system message (chat), or text put before the prompt (completions, legacy)."""
        if self.api == "chat":
            return self.chat(_messages(prompt, system), params)
        body = self._request_body(_with_system(prompt, system), params, stream=False)
        response = self._send(self.predict_url, body, stream=False)
        try:
            return _generated_text(response, self.predict_url)
        finally:
            response.close()

    def stream(
        self, prompt: str, params: GenerationParams = GenerationParams(), *, system: str | None = None
    ) -> Iterator[str]:
        """The completion as it is generated, piece by piece, in order."""
        if self.api == "chat":
            return self.stream_chat(_messages(prompt, system), params)
        body = self._request_body(_with_system(prompt, system), params, stream=True)
        response = self._send(self.stream_url, body, stream=True)
        return self._chunks(response)

    def chat(self, messages: list[Message], params: GenerationParams = GenerationParams()) -> str:
        """The assistant's reply to `messages` (OpenAI roles); the server applies the model's template."""
        url = self._chat_url(stream=False)
        response = self._send(url, self._chat_body(messages, params, stream=False), stream=False)
        try:
            return _generated_text(response, url)
        finally:
            response.close()

    def stream_chat(
        self, messages: list[Message], params: GenerationParams = GenerationParams()
    ) -> Iterator[str]:
        """The assistant's reply to `messages`, piece by piece."""
        url = self._chat_url(stream=True)
        response = self._send(url, self._chat_body(messages, params, stream=True), stream=True)
        return self._chunks(response, url)

    def served_model(self) -> str:
        """The model name the server answers to: as given, else the first one its `/v1/models` lists."""
        if self._model is None:
            url = openai_bases(self.endpoints)[0] + "/models"
            response = self._send(url, None, stream=False)
            try:
                data = response.json()
                self._model = str(data["data"][0]["id"])
            except (ValueError, KeyError, IndexError, TypeError):
                raise PredictError(
                    f"unexpected answer from {url}: {_excerpt(response.text)!r}; "
                    f"expected OpenAI's model list",
                    url=url,
                ) from None
            finally:
                response.close()
        return self._model

    def _chat_url(self, *, stream: bool) -> str:
        plain, streaming = openai_bases(self.endpoints)
        return (streaming if stream else plain) + OPENAI_ROUTE["chat"]

    def _chat_body(self, messages: list[Message], params: GenerationParams, *, stream: bool) -> bytes:
        if not messages or not any(m.get("content", "").strip() for m in messages if m.get("role") == "user"):
            raise UserError("the prompt is empty; pass the text the model should complete")
        return self._openai_body({"messages": messages}, params, stream=stream)

    def _request_body(self, prompt: str, params: GenerationParams, *, stream: bool) -> bytes:
        if self.api == "legacy":
            return _body(prompt, params, stream=stream)
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError("the prompt is empty; pass the text the model should complete")
        return self._openai_body({"prompt": prompt}, params, stream=stream)

    def _openai_body(self, given: dict[str, Any], params: GenerationParams, *, stream: bool) -> bytes:
        """An OpenAI completions or chat body: the served model, `given` (the prompt or the messages), the
        parameters."""
        payload: dict[str, Any] = {"model": self.served_model(), **given}
        payload |= openai_parameters(params)
        if stream:
            payload["stream"] = True
        return json.dumps(payload).encode("utf-8")

    def _chunks(self, response: requests.Response, url: str | None = None) -> Iterator[str]:

        url = url or self.stream_url
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        count = 0
        try:
            if content_type == "text/event-stream":
                for text in _sse_texts(response, url):
                    count += 1
                    yield text
            elif content_type == "application/json":
                yield _generated_text(response, url)
            else:
                for raw in response.iter_content(chunk_size=None):
                    if raw:
                        count += 1
                        yield raw.decode("utf-8", errors="replace")
        except requests.exceptions.RequestException as exc:
            raise PredictError(
                f"the stream from {url} broke after {count} chunks ({type(exc).__name__}); try again", url=url
            ) from exc
        finally:
            response.close()

    def _send(self, url: str, body: bytes | None, *, stream: bool) -> requests.Response:
        """POST `body` (GET when None) to `url`, signed, with the shared retry policy."""

        sent = [0]

        def attempt() -> requests.Response:
            sent[0] += 1
            headers = {"accept": "text/event-stream" if stream else "application/json"}
            if body is not None:
                headers["content-type"] = "application/json"
            response = requests.request(
                "GET" if body is None else "POST",
                url,
                data=body,
                headers=headers,
                auth=self._signer,
                timeout=(min(CONNECT_TIMEOUT_S, self.timeout_s), self.timeout_s),
                stream=stream,
            )
            if response.status_code >= 300:
                text = response.text
                response.close()
                raise _HttpStatus(response.status_code, response.reason or "", text)
            return response

        try:
            return retry_call(
                attempt,
                backoff=self.backoff,
                retryable=_retryable,
                on_retry=self._on_retry,
                sleep=self._sleep,
                clock=self._clock,
            )
        except _HttpStatus as exc:
            raise _status_error(exc, url, stream=stream, oci=self.endpoints.oci) from None
        except requests.exceptions.Timeout as exc:
            raise PredictError(
                f"no answer from {url} within {self.timeout_s:g} s: the model may be busy or still loading; "
                f"try again or raise the timeout",
                url=url,
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise PredictError(
                f"cannot reach {url} ({_root_cause(exc)}) after {_attempts(sent[0])}: "
                f"check the URL and your network",
                url=url,
            ) from exc


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _retryable(exc: BaseException) -> bool:
    """The shared policy (429/5xx/connection errors), minus read timeouts: a slow model is not retried."""

    if isinstance(exc, requests.exceptions.ReadTimeout):
        return False
    return is_retryable(exc)


def wire_parameters(params: GenerationParams) -> dict[str, Any]:
    """The `parameters` object as both engines accept it.

    TGI refuses `temperature: 0` and `top_p: 1`, though both have a meaning every engine shares:
    temperature 0 is greedy decoding, sent as `do_sample: false` with no sampling setting (TGI samples
    whenever one is set; the vLLM adapter maps it back to temperature 0); top_p 1 is no nucleus cut,
    every engine's default, so it is left out.
    """
    if params.temperature == 0:
        return {"max_new_tokens": params.max_new_tokens, "do_sample": False}
    wire: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "temperature": params.temperature}
    if params.top_p < 1:
        wire["top_p"] = params.top_p
    return wire


def openai_parameters(params: GenerationParams) -> dict[str, Any]:
    """The sampling settings in OpenAI's names; top_p 1 (no cut, every server's default) is left out, as
    TGI's OpenAI routes refuse it."""
    wire: dict[str, Any] = {"max_tokens": params.max_new_tokens, "temperature": params.temperature}
    if params.top_p < 1:
        wire["top_p"] = params.top_p
    return wire


def _messages(prompt: str, system: str | None) -> list[Message]:
    messages = [{"role": "system", "content": system}] if system and system.strip() else []
    return [*messages, {"role": "user", "content": prompt}]


def _with_system(prompt: str, system: str | None) -> str:
    return f"{system.strip()}\n\n{prompt}" if system and system.strip() else prompt


def _body(prompt: str, params: GenerationParams, *, stream: bool) -> bytes:
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError("the prompt is empty; pass the text the model should complete")
    parameters = wire_parameters(params)
    payload: dict[str, Any] = {"inputs": prompt, "parameters": parameters}
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode("utf-8")


def _generated_text(response: requests.Response, url: str) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("generated_text"), str):
        return str(data["generated_text"])
    text = _choice_text(data)
    if text is not None:
        return text
    raise PredictError(
        f"unexpected answer from {url}: {_excerpt(response.text)!r}; "
        f"expected JSON with 'generated_text' or OpenAI's 'choices'",
        status=response.status_code,
        url=url,
    )


def _choice_text(data: Any) -> str | None:
    """The text of OpenAI's first choice: a chat message, a chat delta or a completion's text."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
        return None
    choice = data["choices"][0]
    if not isinstance(choice, dict):
        return None
    for key in ("message", "delta"):
        part = choice.get(key)
        if isinstance(part, dict):
            content = part.get("content")
            return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _sse_texts(response: requests.Response, url: str) -> Iterator[str]:
    """The text of each token event; special tokens (end of sequence) are left out."""
    streamed = False
    for data in _sse_data(response.iter_lines(chunk_size=None, decode_unicode=False)):
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            streamed = True
            yield data
            continue
        if not isinstance(event, dict):
            continue
        if event.get("error"):
            error = event["error"]
            said = error.get("message", error) if isinstance(error, dict) else error
            raise PredictError(f"the model server failed mid-stream at {url}: {said}", url=url)
        if "choices" in event:
            text = _choice_text(event)
            if text:
                streamed = True
                yield text
            continue
        token = event.get("token")
        if isinstance(token, dict):
            text = token.get("text")
            if isinstance(text, str) and text and not token.get("special"):
                streamed = True
                yield text
        elif isinstance(event.get("generated_text"), str) and not streamed:
            streamed = True
            yield event["generated_text"]


def _sse_data(lines: Iterator[bytes]) -> Iterator[str]:
    """The data of each Server-Sent Event (multi-line data joined with newlines)."""
    buffer: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", errors="replace")
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith("data:"):
            value = line[5:]
            buffer.append(value[1:] if value.startswith(" ") else value)
    if buffer:
        yield "\n".join(buffer)


def _status_error(exc: _HttpStatus, url: str, *, stream: bool, oci: bool) -> PredictError:
    status = exc.status
    code, detail = _oci_error(exc.body)
    said = f"{status} {code or exc.reason}".strip()
    if status == 401:
        meaning = (
            "the request signature was not accepted; check --auth and --profile (API key, fingerprint, "
            "session token expiry, clock)"
            if oci
            else "the server wants credentials; check --auth"
        )
    elif status == 403:
        meaning = (
            "you are signed in but not allowed to call this deployment; a policy must grant your "
            "group {DATA_SCIENCE_MODEL_DEPLOYMENT_PREDICT} (or 'manage data-science-model-deployments') "
            "in its compartment"
        )
    elif status == 404:
        meaning = (
            "no such model deployment, or you may not call it: check the URL (region, OCID) and your "
            "predict policy"
            if oci
            else "the server has no such route: check the URL's path (/predict, /generate)"
        )
    elif status == 409 and stream:
        meaning = (
            "the deployment answered without streaming; its container must stream when asked "
            "(MODEL_DEPLOY_ENABLE_STREAMING=true and an engine route that streams)"
        )
    elif status in (400, 422):
        meaning = "the model server refused the request"
    elif status == 413:
        meaning = "the prompt is larger than the 10 MB the endpoint accepts"
    elif status == 429:
        meaning = "too many requests even after backing off; raise the deployment's bandwidth or slow down"
    elif status >= 500:
        meaning = (
            "the model server is failing or not ready (still loading weights?) even after retries; "
            "see the deployment's predict log"
        )
        if oci and status == 500 and not stream:
            meaning += " (OCI also ends /predict after 60 s: ask for fewer tokens or stream)"
    else:
        meaning = "the request was refused"
    tail = f" ({_excerpt(detail)})" if detail and status not in (401, 404) else ""
    return PredictError(f"{said} from {url}: {meaning}{tail}", status=status, url=url)


def _oci_error(body: str) -> tuple[str, str]:
    """OCI's `{"code", "message"}` error body, when that is what came back; else ("", body)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", body.strip()
    if isinstance(data, dict):
        code = data.get("code")
        message = data.get("message") or data.get("error") or data.get("detail") or ""
        return (code if isinstance(code, str) else ""), str(message)
    return "", body.strip()


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _BODY_EXCERPT else flat[: _BODY_EXCERPT - 3] + "..."


def _root_cause(exc: BaseException) -> str:
    for _ in range(10):
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return f"{type(exc).__name__}: {_excerpt(str(exc))}"
