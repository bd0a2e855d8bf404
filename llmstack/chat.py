"""The chat page (`llmstack chat`): a Gradio app on one deployment's predict URL.

The page holds the conversation; each reply is one streamed call. With the OpenAI chat API (the default)
the conversation goes as `messages` and the engine applies the model's own chat template; with the legacy
API the prompt is the whole history in the model family's chat format (llmstack/prompting.py). Either is
trimmed to the context length.
Whatever goes wrong during a reply is written into the chat as one readable line, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import gradio as gr

from domain.errors import UserError
from llmstack.prompting import ChatTemplate, Turn, build_messages, build_prompt, cut_at_stop
from oci_runtime.predict import GenerationParams, InvalidParameter

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_SYSTEM_PROMPT = "You are a helpful, respectful and honest assistant."
ERROR_MARK = "⚠️ "
"""Starts the part of an assistant message that reports an error; never sent back to the model."""

LOGIN_MESSAGE = "This page calls a model deployment signed with its owner's OCI key: log in to use it."

CONTROL_LABELS = {"max_new_tokens": "Max tokens", "temperature": "Temperature", "top_p": "Top p"}
TOKEN_STEP = 16
_MAX_ERROR_CHARS = 400


class StreamingClient(Protocol):
    def stream(self, prompt: str, params: GenerationParams = ...) -> Iterator[str]: ...

    def stream_chat(
        self, messages: list[dict[str, str]], params: GenerationParams = ...
    ) -> Iterator[str]: ...


@dataclass(frozen=True, kw_only=True)
class ChatSettings:
    model: str
    """Shown in the page's header."""
    endpoint: str
    """Shown in the page's header (the URL the replies come from)."""
    template: ChatTemplate
    context_tokens: int
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    params: GenerationParams = GenerationParams()
    api: Literal["chat", "legacy"] = "chat"
    """chat: `messages` to OpenAI chat completions; legacy: a prompt in `template`'s format."""

    def __post_init__(self) -> None:
        if self.context_tokens < 2 * TOKEN_STEP:
            raise UserError(
                f"context length (--context-length) must be at least {2 * TOKEN_STEP} tokens, "
                f"got {self.context_tokens}"
            )

    @property
    def max_tokens_limit(self) -> int:
        """The slider's top: half the context, so a long reply still leaves room for the conversation."""
        return max(TOKEN_STEP, self.context_tokens // 2 // TOKEN_STEP * TOKEN_STEP)


def message_text(content: Any) -> str:
    """The text of a chat message in any of the shapes Gradio hands over (str, parts, dicts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        text = content.get("text")
        return text if isinstance(text, str) else ""
    if isinstance(content, Sequence):
        return "".join(message_text(part) for part in content)
    return ""


def turns_from_history(history: Sequence[Mapping[str, Any]]) -> list[Turn]:
    """The exchanges to send back to the model: error reports cut off, unanswered messages dropped."""
    turns: list[Turn] = []
    pending: str | None = None
    for message in history:
        text = message_text(message.get("content"))
        if message.get("role") == "user":
            pending = text
        elif message.get("role") == "assistant" and pending is not None:
            answer = text.split(ERROR_MARK, 1)[0].strip()
            if answer:
                turns.append(Turn(user=pending, assistant=answer))
            pending = None
    return turns


def params_from_controls(
    max_tokens: float | None, temperature: float | None, top_p: float | None
) -> GenerationParams:
    """Slider values (floats, or None when a box was cleared) -> request parameters."""
    values: dict[str, Any] = {"max_new_tokens": max_tokens, "temperature": temperature, "top_p": top_p}
    if isinstance(max_tokens, float) and max_tokens.is_integer():
        values["max_new_tokens"] = int(max_tokens)
    try:
        return GenerationParams(**values)
    except InvalidParameter as exc:
        label = CONTROL_LABELS.get(exc.name, exc.name)
        raise UserError(f"{label}: {exc}") from None


def error_text(exc: BaseException) -> str:
    """One line for the chat. Errors the user can act on say so; anything else names its type only."""
    if isinstance(exc, UserError):
        text = str(exc)
    else:
        log.error("chat reply failed", exc_info=exc)
        text = f"unexpected {type(exc).__name__}: {exc} (details in the terminal running llmstack chat)"
    text = " ".join(text.split())
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 3] + "..."
    return ERROR_MARK + text


def reply(
    client: StreamingClient,
    settings: ChatSettings,
    message: str,
    history: Sequence[Mapping[str, Any]],
    system: str,
    max_tokens: float | None,
    temperature: float | None,
    top_p: float | None,
) -> Iterator[tuple[str, str]]:
    """The assistant's message as it grows, and a status line, for each chunk the model sends."""
    shown = ""
    status = ""
    try:
        if not message.strip():
            raise UserError("nothing to send: type a message first")
        params = params_from_controls(max_tokens, temperature, top_p)
        turns = turns_from_history(history)
        stop: tuple[str, ...] = ()  # the server's chat template ends the reply itself
        if settings.api == "chat":
            built = build_messages(
                system=system or "",
                history=turns,
                message=message,
                context_tokens=settings.context_tokens,
                max_new_tokens=params.max_new_tokens,
            )
            tokens, dropped = built.tokens, built.dropped_turns

            def start() -> Iterator[str]:
                return client.stream_chat(built.messages, params)
        else:
            prompt = build_prompt(
                settings.template,
                system=system or "",
                history=turns,
                message=message,
                context_tokens=settings.context_tokens,
                max_new_tokens=params.max_new_tokens,
            )
            tokens, dropped, stop = prompt.tokens, prompt.dropped_turns, settings.template.stop

            def start() -> Iterator[str]:
                return client.stream(prompt.text, params)

        status = _prompt_status(tokens, dropped, settings.context_tokens)
        yield "", status
        started = time.monotonic()
        received = ""
        stopped = False
        for chunk in start():
            received += chunk
            visible, stopped = cut_at_stop(received, stop, final=False)
            if visible != shown:
                shown = visible
                yield shown, status
            if stopped:
                break
        if not stopped:
            shown, _ = cut_at_stop(received, stop, final=True)
        status = f"{status} · reply in {time.monotonic() - started:.1f} s"
        yield shown.strip() or "(the model returned no text)", status
    except Exception as exc:
        yield (f"{shown}\n\n" if shown else "") + error_text(exc), status


def _prompt_status(tokens: int, dropped: int, context: int) -> str:
    text = f"prompt ≈ {tokens} of {context} tokens"
    if dropped:
        text += f" · {dropped} earliest exchange{'s' if dropped > 1 else ''} left out to fit"
    return text


async def in_worker_thread(steps: Iterator[T]) -> AsyncIterator[T]:
    """`steps`, each one computed in a worker thread, so that cancelling (the Stop button) takes effect at
    once even while the thread waits on a silent endpoint. Gradio's own sync-generator bridge waits for
    the pending chunk first. An abandoned thread ends with its request (the client's read timeout)."""
    done = object()
    while True:
        step = await asyncio.to_thread(next, steps, done)
        if step is done:
            return
        yield step  # type: ignore[misc]


def build_app(settings: ChatSettings, client: StreamingClient) -> gr.Blocks:
    """The page; `client` is anything with the predict client's `stream` (tests pass a fake)."""
    chat_format = "the model's own" if settings.api == "chat" else settings.template.family
    header = (
        f"### Chat with `{settings.model}`\n"
        f"Endpoint: `{settings.endpoint}` · chat format: {chat_format} · "
        f"context: {settings.context_tokens} tokens"
    )

    async def respond(
        message: str,
        history: list[dict[str, Any]],
        system: str,
        max_tokens: float | None,
        temperature: float | None,
        top_p: float | None,
    ) -> AsyncIterator[tuple[str, str]]:
        steps = reply(client, settings, message, history, system, max_tokens, temperature, top_p)
        async for step in in_worker_thread(steps):
            yield step

    app: gr.Blocks
    with gr.Blocks(title=f"llmstack chat: {settings.model}", analytics_enabled=False) as app:
        gr.Markdown(header, elem_id="chat-header")
        with gr.Row():
            chat_column = gr.Column(scale=3)
            with gr.Column(scale=1, min_width=260):
                system = gr.Textbox(
                    settings.system_prompt, label="System prompt", lines=3, elem_id="system-prompt"
                )
                max_tokens = gr.Slider(
                    TOKEN_STEP,
                    settings.max_tokens_limit,
                    value=min(settings.params.max_new_tokens, settings.max_tokens_limit),
                    step=TOKEN_STEP,
                    label=CONTROL_LABELS["max_new_tokens"],
                    info="the longest reply, in tokens",
                    elem_id="max-tokens",
                )
                temperature = gr.Slider(
                    0.0,
                    2.0,
                    value=settings.params.temperature,
                    step=0.05,
                    label=CONTROL_LABELS["temperature"],
                    info="higher: more varied; 0: always the likeliest token",
                    elem_id="temperature",
                )
                top_p = gr.Slider(
                    0.05,
                    1.0,
                    value=settings.params.top_p,
                    step=0.05,
                    label=CONTROL_LABELS["top_p"],
                    info="sample only from the most likely tokens that add up to this",
                    elem_id="top-p",
                )
                status = gr.Markdown("", elem_id="chat-status")
        with chat_column:
            gr.ChatInterface(
                respond,
                chatbot=gr.Chatbot(
                    height=520, label=settings.model, buttons=["copy", "copy_all"], elem_id="chatbot"
                ),
                textbox=gr.Textbox(
                    placeholder="Type a message and press Enter",
                    submit_btn=True,
                    stop_btn=True,
                    show_label=False,
                    elem_id="message",
                ),
                additional_inputs=[system, max_tokens, temperature, top_p],
                additional_outputs=[status],
                analytics_enabled=False,
                api_visibility="private",
            )
    return app


def serve(
    app: gr.Blocks, *, host: str, port: int, share: bool, auth: tuple[str, str] | None = None
) -> tuple[str, str | None]:
    """Start the page in the background: (its local URL, its public URL when `share` made one). With
    `auth` (user, password) every visitor logs in first (Gradio's login page)."""
    app.queue(default_concurrency_limit=4)
    _, local_url, share_url = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=auth,
        auth_message=LOGIN_MESSAGE if auth else None,
        ssr_mode=False,
        footer_links=["settings"],
        prevent_thread_lock=True,
        quiet=True,
    )
    return str(local_url), str(share_url) if share_url else None


def run_until_interrupted(app: gr.Blocks) -> None:
    """Keep serving until Ctrl-C, then close the page's server."""
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
