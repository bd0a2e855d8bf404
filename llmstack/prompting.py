"""Conversation history -> OpenAI chat messages, or (for the legacy API) one prompt string in the model
family's chat format; either trimmed to the context.

With OpenAI chat completions the engine applies the model's own chat template to `messages`
(`build_messages`). The legacy predict contract takes a single `inputs` string, so for it alone the chat
format is applied here, on the client (`build_prompt` and the hand-written templates).
The engine's tokenizer adds the beginning-of-sequence token itself, so templates leave out the leading
`<s>` / `<|begin_of_text|>` (writing it too would give the model two).

The tokenizer lives in the deployment, not here: prompt length is an estimate that errs on the high side
(about 3 characters per token for ASCII text, 1 token per other character), so a trimmed prompt fits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from domain.errors import UserError

Family = Literal["llama2", "llama3", "mistral", "generic"]
FAMILIES: tuple[str, ...] = get_args(Family)
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Turn:
    """One exchange: what the user said and what the model answered."""

    user: str
    assistant: str


Render = Callable[[str, Sequence[Turn], str], str]


@dataclass(frozen=True, kw_only=True)
class ChatTemplate:
    family: Family
    render: Render
    stop: tuple[str, ...]
    """Strings the model writes when it starts a turn of its own; the reply is cut there."""
    context_tokens: int
    """The family's usual context length, used when the user does not give one."""


@dataclass(frozen=True, kw_only=True)
class Prompt:
    text: str
    tokens: int
    """Estimated length of `text` in tokens."""
    dropped_turns: int
    """How many of the oldest turns were left out to make the prompt fit."""


class PromptTooLong(UserError):
    """Even with every earlier turn left out, the prompt and the reply do not fit the context."""


def _llama2(system: str, turns: Sequence[Turn], message: str) -> str:
    # Meta's format: <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] ...
    def inst(user: str, first: bool) -> str:
        if first and system.strip():
            user = f"<<SYS>>\n{system.strip()}\n<</SYS>>\n\n{user.strip()}"
        return f"[INST] {user.strip()} [/INST]"

    out = [
        f"{'<s>' if i else ''}{inst(t.user, i == 0)} {t.assistant.strip()} </s>" for i, t in enumerate(turns)
    ]
    out.append(f"{'<s>' if turns else ''}{inst(message, not turns)}")
    return "".join(out)


def _llama3(system: str, turns: Sequence[Turn], message: str) -> str:
    def block(role: str, text: str) -> str:
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n{text.strip()}<|eot_id|>"

    out = [block("system", system)] if system.strip() else []
    for t in turns:
        out += [block("user", t.user), block("assistant", t.assistant)]
    out.append(block("user", message))
    out.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(out)


def _mistral(system: str, turns: Sequence[Turn], message: str) -> str:
    # Mistral instruct has no system role: the system prompt opens the first user message.
    users = [t.user for t in turns] + [message]
    if system.strip():
        users[0] = f"{system.strip()}\n\n{users[0].strip()}"
    out = [f"[INST] {u.strip()} [/INST]{t.assistant.strip()}</s>" for u, t in zip(users, turns, strict=False)]
    out.append(f"[INST] {users[-1].strip()} [/INST]")
    return "".join(out)


def _generic(system: str, turns: Sequence[Turn], message: str) -> str:
    out = [f"{system.strip()}\n\n"] if system.strip() else []
    for t in turns:
        out.append(f"User: {t.user.strip()}\nAssistant: {t.assistant.strip()}\n")
    out.append(f"User: {message.strip()}\nAssistant:")
    return "".join(out)


TEMPLATES: dict[str, ChatTemplate] = {
    "llama2": ChatTemplate(family="llama2", render=_llama2, stop=("</s>", "[INST]"), context_tokens=4096),
    "llama3": ChatTemplate(
        family="llama3", render=_llama3, stop=("<|eot_id|>", "<|start_header_id|>"), context_tokens=8192
    ),
    "mistral": ChatTemplate(family="mistral", render=_mistral, stop=("</s>", "[INST]"), context_tokens=8192),
    "generic": ChatTemplate(family="generic", render=_generic, stop=("\nUser:",), context_tokens=2048),
}

_FAMILY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("llama3", re.compile(r"llama[-_ .]?3")),
    ("llama2", re.compile(r"llama[-_ .]?2|codellama")),
    ("mistral", re.compile(r"mistral|mixtral")),
)


def family_of(model_name: str) -> Family:
    """The chat format a model's name suggests (`llama2-7b-chat` -> llama2); `generic` when none matches."""
    name = model_name.lower()
    for family, pattern in _FAMILY_PATTERNS:
        if pattern.search(name):
            return family  # type: ignore[return-value]
    return "generic"


def template_for(family: str) -> ChatTemplate:
    try:
        return TEMPLATES[family]
    except KeyError:
        raise UserError(f"chat template {family!r} is not one of: {', '.join(FAMILIES)}") from None


def estimate_tokens(text: str) -> int:
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_chars / 3) + (len(text) - ascii_chars)


def trim_history(
    history: Sequence[Turn],
    fit: Callable[[list[Turn]], tuple[T, int]],
    *,
    context_tokens: int,
    max_new_tokens: int,
) -> tuple[T, int, int]:
    """`fit(turns)` (what it builds and its length in tokens) for the newest turns of `history` that leave
    room for the reply, and how many of the oldest it left out. With no turns left and still too long,
    PromptTooLong says by how much."""
    budget = context_tokens - max_new_tokens
    if budget <= 0:
        raise PromptTooLong(
            f"max tokens {max_new_tokens} leaves no room for the prompt in a context of "
            f"{context_tokens} tokens: lower max tokens"
        )
    turns = list(history)
    while True:
        built, tokens = fit(turns)
        if tokens <= budget:
            return built, tokens, len(history) - len(turns)
        if not turns:
            raise PromptTooLong(
                f"the message and system prompt come to about {tokens} tokens, but a context of "
                f"{context_tokens} tokens with max tokens {max_new_tokens} leaves room for {budget}: "
                "shorten them or lower max tokens"
            )
        turns.pop(0)


def build_prompt(
    template: ChatTemplate,
    *,
    system: str,
    history: Sequence[Turn],
    message: str,
    context_tokens: int,
    max_new_tokens: int,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> Prompt:
    """The prompt for `message` after `history`, leaving out the oldest turns until prompt + reply fit.

    The system prompt and the new message are always kept; if they alone do not fit, PromptTooLong says
    by how much.
    """

    def fit(turns: list[Turn]) -> tuple[str, int]:
        text = template.render(system, turns, message)
        return text, count_tokens(text)

    text, tokens, dropped = trim_history(
        history, fit, context_tokens=context_tokens, max_new_tokens=max_new_tokens
    )
    return Prompt(text=text, tokens=tokens, dropped_turns=dropped)


MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators a chat template adds around each message


@dataclass(frozen=True, kw_only=True)
class Messages:
    messages: list[dict[str, str]]
    tokens: int
    """Estimated length of the messages in tokens, with the template's markers."""
    dropped_turns: int


def build_messages(
    *,
    system: str,
    history: Sequence[Turn],
    message: str,
    context_tokens: int,
    max_new_tokens: int,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> Messages:
    """OpenAI chat messages for `message` after `history`, the oldest turns left out until they and the
    reply fit; the system message and the new message are always kept (PromptTooLong when they alone do
    not fit)."""
    head = [{"role": "system", "content": system.strip()}] if system.strip() else []

    def fit(turns: list[Turn]) -> tuple[list[dict[str, str]], int]:
        messages = [*head]
        for turn in turns:
            messages += [
                {"role": "user", "content": turn.user},
                {"role": "assistant", "content": turn.assistant},
            ]
        messages.append({"role": "user", "content": message})
        return messages, sum(count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)

    messages, tokens, dropped = trim_history(
        history, fit, context_tokens=context_tokens, max_new_tokens=max_new_tokens
    )
    return Messages(messages=messages, tokens=tokens, dropped_turns=dropped)


def cut_at_stop(text: str, stop: Sequence[str], *, final: bool) -> tuple[str, bool]:
    """The part of a streamed reply to show, and whether the model has begun a turn of its own.

    While streaming (`final=False`) a tail that could be the start of a stop string is held back, so
    `[INS` never flashes on screen before `[INST]` arrives.
    """
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    if cuts:
        return text[: min(cuts)], True
    if not final:
        held = max((n for s in stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
        return text[: len(text) - held], False
    return text, False
