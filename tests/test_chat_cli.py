"""`llmstack chat`: which deployment, which chat format, what the page is given, and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import llmstack
from llmstack.cli import main

OUTPUTS = {
    "models": {
        "llama2-7b-chat": {
            "predictUrl": "http://127.0.0.1:9/ocid1.datasciencemodeldeployment.a/predict",
            "streamUrl": "http://127.0.0.1:9/ocid1.datasciencemodeldeployment.a/predictWithResponseStream",
            "deploymentId": "ocid1.datasciencemodeldeployment.a",
            "catalogModelId": "ocid1.datasciencemodel.a",
        },
        "mistral-7b": {
            "predictUrl": "http://127.0.0.1:9/ocid1.datasciencemodeldeployment.b/predict",
            "streamUrl": "http://127.0.0.1:9/ocid1.datasciencemodeldeployment.b/predictWithResponseStream",
            "deploymentId": "ocid1.datasciencemodeldeployment.b",
            "catalogModelId": "ocid1.datasciencemodel.b",
        },
    }
}


@pytest.fixture
def outputs_file(tmp_path: Path) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(OUTPUTS))
    return path


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Runs `llmstack chat` up to the point of serving, and records what the page was built with."""
    pytest.importorskip("gradio", reason="the chat extra is not installed: pip install -e '.[chat]'")
    from llmstack import chat

    seen: dict[str, Any] = {}

    def build_app(settings: chat.ChatSettings, client: Any) -> str:
        seen.update(settings=settings, client=client)
        return "app"

    def serve(
        app: str, *, host: str, port: int, share: bool, auth: tuple[str, str] | None = None
    ) -> tuple[str, str | None]:
        seen.update(app=app, host=host, port=port, share=share, auth=auth)
        return f"http://{host}:{port}/", "https://abc.gradio.live" if share else None

    monkeypatch.setattr(chat, "build_app", build_app)
    monkeypatch.setattr(chat, "serve", serve)
    monkeypatch.setattr(chat, "run_until_interrupted", lambda app: seen.update(ran=app))
    monkeypatch.delenv("OCI_CLI_AUTH", raising=False)
    monkeypatch.delenv("LLMSTACK_CHAT_PASSWORD", raising=False)
    return seen


def test_a_stack_model_gets_its_urls_its_chat_format_and_a_loopback_page(
    served: dict[str, Any], outputs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "--outputs", str(outputs_file), "--model", "llama2-7b-chat"]) == 0
    assert served["ran"] == "app"
    stream_url = OUTPUTS["models"]["llama2-7b-chat"]["streamUrl"] + "/v1/chat/completions"
    assert capsys.readouterr().err.splitlines() == [
        f"llmstack chat: llama2-7b-chat (the model's own chat template) at {stream_url}",
        "llmstack chat: open http://127.0.0.1:7860/ (Ctrl-C stops)",
    ]
    settings = served["settings"]
    assert settings.model == "llama2-7b-chat"
    assert settings.api == "chat" and served["client"].api == "chat"
    assert settings.template.family == "llama2"
    assert settings.context_tokens == 4096
    assert settings.endpoint == stream_url
    assert served["client"].predict_url == (
        OUTPUTS["models"]["llama2-7b-chat"]["predictUrl"] + "/v1/chat/completions"
    )
    assert served["auth"] is None  # a page on this machine only: no login
    assert served["client"].auth.mode == "none"  # a loopback URL needs no signing
    assert (served["host"], served["port"], served["share"]) == ("127.0.0.1", 7860, False)


def test_the_format_context_and_page_can_be_chosen(
    served: dict[str, Any], outputs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "chat",
            "--outputs",
            str(outputs_file),
            "--model",
            "mistral-7b",
            "--template",
            "llama3",
            "--context-length",
            "16384",
            "--system",
            "Answer in French.",
            "--port",
            "8123",
            "--share",
        ]
    )
    assert code == 0
    settings = served["settings"]
    assert (settings.template.family, settings.context_tokens) == ("llama3", 16384)
    assert settings.system_prompt == "Answer in French."
    assert (served["port"], served["share"]) == (8123, True)
    assert "open http://127.0.0.1:8123/ or https://abc.gradio.live (Ctrl-C stops)" in capsys.readouterr().err


def test_sharing_requires_a_login_with_a_password_printed_once(
    served: dict[str, Any], outputs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "--outputs", str(outputs_file), "--model", "mistral-7b", "--share"]) == 0
    user, password = served["auth"]
    assert user == "llmstack" and len(password) >= 16
    err = capsys.readouterr().err
    assert err.count(password) == 1 and f"log in as llmstack with password {password}" in err

    assert main(["chat", "--outputs", str(outputs_file), "--model", "mistral-7b", "--share"]) == 0
    assert served["auth"][1] != password  # a new one each time


def test_a_given_password_is_used_and_never_printed(
    served: dict[str, Any],
    outputs_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["chat", "--outputs", str(outputs_file), "--model", "mistral-7b", "--share"]
    assert main([*argv, "--password", "s3cret-given"]) == 0
    assert served["auth"] == ("llmstack", "s3cret-given")
    monkeypatch.setenv("LLMSTACK_CHAT_PASSWORD", "from-the-env")
    assert main(argv) == 0
    assert served["auth"] == ("llmstack", "from-the-env")
    err = capsys.readouterr().err
    assert "s3cret-given" not in err and "from-the-env" not in err
    assert "log in as llmstack with the password you gave" in err
    # a password without --share guards the local page too
    monkeypatch.delenv("LLMSTACK_CHAT_PASSWORD")
    assert main(["chat", "--outputs", str(outputs_file), "--model", "mistral-7b", "--password", "p"]) == 0
    assert served["auth"] == ("llmstack", "p") and served["share"] is False


def test_the_help_says_what_sharing_exposes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["chat", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "signed with YOUR OCI credentials" in text and "a login is required" in text


def test_a_bare_endpoint_uses_the_generic_format_unless_told(served: dict[str, Any]) -> None:
    assert main(["chat", "--endpoint", "http://127.0.0.1:8080/generate"]) == 0
    assert served["client"].stream_url == "http://127.0.0.1:8080/v1/chat/completions"
    assert main(["chat", "--api", "legacy", "--endpoint", "http://127.0.0.1:8080/generate"]) == 0
    assert served["settings"].template.family == "generic"
    assert served["settings"].model == "model at 127.0.0.1:8080"
    assert served["client"].stream_url == "http://127.0.0.1:8080/generate_stream"
    assert (
        main(
            [
                "chat",
                "--api",
                "legacy",
                "--endpoint",
                "http://127.0.0.1:8080/generate",
                "--template",
                "llama2",
            ]
        )
        == 0
    )
    assert served["settings"].template.family == "llama2"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--model", "falcon"],
            "llmstack chat: --model 'falcon' is not in {outputs}; its models: llama2-7b-chat, mistral-7b",
        ),
        (
            [],
            "llmstack chat: {outputs} serves several models; "
            "pick one with --model (llama2-7b-chat, mistral-7b)",
        ),
        (
            ["--model", "llama2-7b-chat", "--endpoint", "http://127.0.0.1:1/predict"],
            "llmstack chat: pass either --endpoint URL or --stack/--outputs with --model, not both",
        ),
    ],
)
def test_which_deployment_errors_are_one_line(
    served: dict[str, Any],
    outputs_file: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert main(["chat", "--outputs", str(outputs_file), *argv]) == 2
    assert capsys.readouterr().err == message.format(outputs=outputs_file) + "\n"
    assert "settings" not in served


def test_no_deployment_named_is_one_line(served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat"]) == 2
    assert capsys.readouterr().err.startswith(
        "llmstack chat: say which deployment: --endpoint URL, or --stack"
    )


def test_a_stack_without_the_pulumi_cli_says_what_to_do_instead(
    served: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["chat", "--stack", "dev", "--model", "llama2-7b-chat"]) == 2
    err = capsys.readouterr().err
    assert "pulumi stack output --json -s dev > outputs.json" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--port", "80"], "argument --port: '80' is not a port number from 1024 to 65535"),
        (["--context-length", "0"], "argument --context-length: '0' is not a whole number of at least 1"),
        (["--template", "chatml"], "argument --template: invalid choice: 'chatml'"),
    ],
)
def test_bad_flags_are_refused_by_name(
    capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", "--endpoint", "http://127.0.0.1:1/predict", *argv])
    assert exit_info.value.code == 2
    assert complaint in capsys.readouterr().err


def test_without_the_chat_extra_it_says_how_to_get_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # what a missing package looks like to `import`
    monkeypatch.delitem(sys.modules, "llmstack.chat", raising=False)
    monkeypatch.delattr(llmstack, "chat", raising=False)
    assert main(["chat", "--endpoint", "http://127.0.0.1:1/predict"]) == 2
    assert capsys.readouterr().err == (
        "llmstack chat: the chat page needs the chat extra (gradio is missing): "
        "pip install 'oci-llm-stack[chat]'\n"
    )


def test_the_help_lists_the_page_and_conversation_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["chat", "--help"])
    out = capsys.readouterr().out
    for flag in ("--endpoint", "--stack", "--outputs", "--model", "--auth", "--template", "--context-length"):
        assert flag in out
    for flag in ("--system", "--host", "--port", "--share"):
        assert flag in out


def test_a_taken_port_is_one_line(
    served: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmstack import chat

    def taken(app: str, *, host: str, port: int, share: bool, auth: Any = None) -> tuple[str, str | None]:
        raise OSError(f"Cannot find empty port in range: {port}-{port}. You can specify a different port ...")

    monkeypatch.setattr(chat, "serve", taken)
    assert main(["chat", "--endpoint", "http://127.0.0.1:1/predict", "--port", "7999"]) == 2
    assert capsys.readouterr().err == "llmstack chat: port 7999 on 127.0.0.1 is in use: pick another --port\n"
    assert "ran" not in served


def test_a_context_too_small_for_the_page_is_one_line(
    served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "--endpoint", "http://127.0.0.1:1/predict", "--context-length", "8"]) == 2
    assert capsys.readouterr().err == (
        "llmstack chat: context length (--context-length) must be at least 32 tokens, got 8\n"
    )
