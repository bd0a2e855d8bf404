"""`llmstack chat`: a chat page in the browser on a deployed model (Gradio, from the `chat` extra)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from domain.errors import UserError
from llmstack.endpoints import add_target_arguments, predict_client, resolve_target
from llmstack.prompting import FAMILIES

HELP = "open a chat page (Gradio) on a deployed model"

DEFAULT_PORT = 7860
LOGIN_USER = "llmstack"
PASSWORD_ENV = "LLMSTACK_CHAT_PASSWORD"
SHARE_HELP = (
    "also publish a temporary public gradio.live link. Anyone who has the link and the password can chat "
    "with the deployment through this page, and every call is signed with YOUR OCI credentials (your "
    "key, your predict permission, your quota and logs): a login is required, user "
    f"'{LOGIN_USER}', password from --password or ${PASSWORD_ENV}, else generated and printed once"
)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1024 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 1024 to 65535")
    return port


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    talk = parser.add_argument_group("conversation")
    talk.add_argument(
        "--api",
        choices=("chat", "legacy"),
        default="chat",
        help="chat: the conversation as OpenAI chat messages, the engine applies the model's own template "
        '(default); legacy: one prompt in --template\'s format, as {"inputs", "parameters"}',
    )
    talk.add_argument(
        "--template",
        choices=("auto", *FAMILIES),
        default="auto",
        help="chat format for --api legacy (default: from the model's name; generic when it says nothing); "
        "with --api chat it sets only the default context length",
    )
    talk.add_argument(
        "--context-length",
        type=_positive_int,
        metavar="N",
        help="the model's context in tokens; older turns are left out to fit (default: the family's)",
    )
    talk.add_argument("--system", metavar="TEXT", help="the system prompt the page starts with")
    talk.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="seconds to wait for a reply to start (120)"
    )
    page = parser.add_argument_group("page")
    page.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (127.0.0.1: this machine only)"
    )
    page.add_argument("--port", type=_port, default=DEFAULT_PORT, metavar="N", help=f"port ({DEFAULT_PORT})")
    page.add_argument("--share", action="store_true", help=SHARE_HELP)
    page.add_argument(
        "--password",
        metavar="TEXT",
        help=f"the login password (default: ${PASSWORD_ENV}; with --share and neither, one is generated). "
        "Given without --share, the local page asks for it too",
    )


def run(args: argparse.Namespace) -> int:
    from llmstack.prompting import family_of, template_for

    target = resolve_target(args)
    family = family_of(target.model) if args.template == "auto" else args.template
    template = template_for(family)
    client = predict_client(args, target, "chat")
    _quiet_gradio()
    try:
        from llmstack import chat
    except ImportError as exc:
        raise UserError(
            f"the chat page needs the chat extra ({exc.name or exc} is missing): "
            "pip install 'oci-llm-stack[chat]'"
        ) from exc
    settings = chat.ChatSettings(
        model=target.model,
        endpoint=client.stream_url,
        template=template,
        context_tokens=args.context_length or template.context_tokens,
        system_prompt=chat.DEFAULT_SYSTEM_PROMPT if args.system is None else args.system,
        api=args.api,
    )
    password = args.password or os.environ.get(PASSWORD_ENV) or None
    generated = args.share and password is None
    if generated:
        password = secrets.token_urlsafe(16)
    auth = (LOGIN_USER, password) if password else None
    app = chat.build_app(settings, client)
    try:
        local_url, share_url = chat.serve(app, host=args.host, port=args.port, share=args.share, auth=auth)
    except OSError as exc:
        if "empty port" in str(exc):  # Gradio's words for "taken"
            raise UserError(f"port {args.port} on {args.host} is in use: pick another --port") from exc
        raise UserError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    where = f"{local_url} or {share_url}" if share_url else local_url
    chat_format = "the model's own chat template" if args.api == "chat" else f"{template.family} format"
    print(f"llmstack chat: {target.model} ({chat_format}) at {client.stream_url}", file=sys.stderr)
    if auth is not None:
        shown = f"password {password}" if generated else "the password you gave"
        print(f"llmstack chat: log in as {LOGIN_USER} with {shown}", file=sys.stderr)
    if args.share and not share_url:
        print(
            "llmstack chat: no public link could be made; the page is on this machine only", file=sys.stderr
        )
    print(f"llmstack chat: open {where} (Ctrl-C stops)", file=sys.stderr)
    chat.run_until_interrupted(app)
    return 0


def _quiet_gradio() -> None:
    """Gradio phones home (usage analytics, a version check) unless told not to before it is imported."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
