"""Real OpenAI-API clients against the whole serving path, on loopback:

the `openai` SDK and langchain-oci's ChatOCIModelDeployment -> the fake OCI front door (checks the request
signature; routes `/<ocid>/predict/v1/...`, `/<ocid>/predictWithResponseStream/v1/...` and the `route`
header on `/<ocid>/predict`) -> the serving adapter -> a fake vLLM engine's OpenAI server.

The code run is the README's "Calling the model" snippets themselves, so the docs cannot drift.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serving.adapter import Adapter, AdapterConfig
from tests.fakeoci.core import FakeOci, TestIdentity
from tests.fakeoci.modeldeployments import Deployment, ModelDeployments
from tests.serving_fakes import SOCKET_TIMEOUT_S, FakeEngine

README = Path(__file__).resolve().parent.parent / "README.md"
REPLY = "Hello world"  # the fake engine's pieces: "Hel", "lo", " world"


def readme_snippet(name: str) -> str:
    """The python block after `<!-- snippet:NAME -->` in the README."""
    found = re.search(rf"<!-- snippet:{name} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert found, f"the README has no snippet {name!r}"
    return found.group(1)


@dataclass
class Path_:
    deployment: Deployment
    engine: FakeEngine
    base_url: str  # the stack's openaiBaseUrl

    def routed(self) -> list[tuple[str, str, str]]:
        """(method, path at the front door, path the container got) for each OpenAI-routed request."""
        return [(method, path, routed) for method, path, routed, _ in self.deployment.engine.seen]

    def headers(self, index: int) -> dict[str, str]:
        return {k.lower(): v for k, v in self.deployment.engine.seen[index][3].items()}


@pytest.fixture
def serving_path(fake_oci: FakeOci) -> Iterator[Path_]:
    with FakeEngine("vllm").start() as engine:
        adapter = Adapter(
            AdapterConfig(
                engine="vllm",
                engine_url=engine.url,
                served_model="served",
                request_timeout_s=SOCKET_TIMEOUT_S,
            ),
            log=lambda line: None,
        )
        server = adapter.bind("127.0.0.1", 0).start()
        try:
            deployment = fake_oci.service(ModelDeployments).script(polls=0)
            deployment.upstream = f"http://127.0.0.1:{server.server_address[1]}"
            yield Path_(deployment, engine, f"{deployment.url}/predict/v1")
        finally:
            assert server.stop(SOCKET_TIMEOUT_S) == 0


@pytest.fixture
def oci_home(tmp_path: Path, oci_identity: TestIdentity, monkeypatch: pytest.MonkeyPatch) -> None:
    """~/.oci/config is the test identity's (what `oci.config.from_file()` in the README reads)."""
    home = tmp_path / "home"
    (home / ".oci").mkdir(parents=True)
    (home / ".oci" / "config").write_text(oci_identity.config_file.read_text())
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture
def no_ads(monkeypatch: pytest.MonkeyPatch) -> None:
    """langchain-oci's validator does a bare `import ads` (oracle-ads, not one of its dependencies); with
    `auth={"signer": ...}` given, nothing from it is used, so an empty module stands in."""
    if "ads" not in sys.modules:
        monkeypatch.setitem(sys.modules, "ads", types.ModuleType("ads"))


def run_openai_snippet(base_url: str) -> dict[str, Any]:
    code = readme_snippet("openai").replace(
        '"https://modeldeployment.us-ashburn-1.oci.customer-oci.com/<md-ocid>/predict/v1"', repr(base_url)
    )
    assert repr(base_url) in code
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md:snippet:openai", "exec"), namespace)
    return namespace


@pytest.mark.usefixtures("oci_home")
def test_the_openai_sdk_calls_and_streams_by_path(
    fake_oci: FakeOci, serving_path: Path_, capsys: pytest.CaptureFixture[str]
) -> None:
    run_openai_snippet(serving_path.base_url)

    assert capsys.readouterr().out == f"{REPLY}\n{REPLY}\n"
    ocid = serving_path.deployment.id
    assert serving_path.routed() == [
        ("GET", f"/{ocid}/predict/v1/models", "/v1/models"),
        ("POST", f"/{ocid}/predict/v1/chat/completions", "/v1/chat/completions"),
        ("POST", f"/{ocid}/predictWithResponseStream/v1/chat/completions", "/v1/chat/completions"),
    ]
    # every call was signed and the signature checked by the front door
    assert [r.status for r in fake_oci.requests("PredictOpenAIGet")] == [200]
    assert [r.status for r in fake_oci.requests("PredictOpenAI")] == [200]
    assert [r.status for r in fake_oci.requests("PredictStreamOpenAI")] == [200]
    assert serving_path.headers(1)["authorization"].startswith("Signature ")
    sent = serving_path.engine.requests
    assert sent[-1][0] == "/v1/chat/completions" and sent[-1][1]["stream"] is True
    assert sent[-1][1]["model"] == "served"  # the name /v1/models listed


@pytest.mark.usefixtures("oci_home")
def test_an_unsigned_openai_call_is_refused_by_the_front_door(serving_path: Path_) -> None:
    import openai

    client = openai.OpenAI(api_key="OCI", base_url=serving_path.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="served", messages=[{"role": "user", "content": "hi"}])
    assert serving_path.engine.requests == []


@pytest.mark.usefixtures("oci_home", "no_ads")
def test_langchain_oci_invokes_and_streams_with_the_route_header(
    fake_oci: FakeOci, serving_path: Path_, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("langchain_oci", reason="the clients extra (make test installs it)")
    namespace = run_openai_snippet(serving_path.base_url)
    capsys.readouterr()
    before = len(serving_path.routed())

    exec(compile(readme_snippet("langchain"), "README.md:snippet:langchain", "exec"), namespace)

    assert capsys.readouterr().out == f"{REPLY}\n{REPLY}\n"
    ocid = serving_path.deployment.id
    assert serving_path.routed()[before:] == [
        ("POST", f"/{ocid}/predict", "/v1/chat/completions"),
        ("POST", f"/{ocid}/predict", "/v1/chat/completions"),
    ]
    plain, streamed = serving_path.headers(before), serving_path.headers(before + 1)
    assert plain["route"] == streamed["route"] == "/v1/chat/completions"
    assert "enable-streaming" not in plain and streamed["enable-streaming"] == "true"
    assert [r.status for r in fake_oci.requests("Predict")] == [200, 200]
    # the engine got the OpenAI body as LangChain sent it, without the route header
    assert [body.get("stream", False) for path, body in serving_path.engine.requests[-2:]] == [False, True]
    assert all("route" not in {k.lower() for k in h} for h in serving_path.engine.chat_headers)
