"""Real OpenAI-API clients against the whole serving path, on loopback:

the `openai` SDK and langchain-oci's ChatOCIModelDeployment -> the fake OCI front door (checks the request
signature; routes `/<ocid>/predict/v1/...`, `/<ocid>/predictWithResponseStream/v1/...` and the `route`
header on `/<ocid>/predict`) -> the container, as each image serves it:
- vLLM: straight to the engine's own OpenAI server (a stand-in on uvicorn) with `serving.vllm_routes` as
  its middleware, nothing in between;
- TGI: the serving adapter -> a fake TGI engine's OpenAI server.

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

from serving.vllm_routes import OciRoutes
from tests.fakeoci.core import FakeOci, TestIdentity
from tests.fakeoci.modeldeployments import Deployment, ModelDeployments
from tests.serving_fakes import AsgiServer, FakeEngine, FakeVllmApp, running_adapter

README = Path(__file__).resolve().parent.parent / "README.md"
REPLY = "Hello world"  # the fake engine's pieces: "Hel", "lo", " world"


def readme_snippet(name: str) -> str:
    """The python block after `<!-- snippet:NAME -->` in the README."""
    found = re.search(rf"<!-- snippet:{name} -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert found, f"the README has no snippet {name!r}"
    return found.group(1)


@dataclass
class Path_:
    image: str  # vllm (the engine's own server, the middleware in it) or tgi (the adapter in front)
    deployment: Deployment
    engine: FakeEngine
    base_url: str  # the stack's openaiBaseUrl

    def routed(self) -> list[tuple[str, str, str]]:
        """(method, path at the front door, path the container got) for each OpenAI-routed request."""
        return [(method, path, routed) for method, path, routed, _ in self.deployment.engine.seen]

    def headers(self, index: int) -> dict[str, str]:
        return {k.lower(): v for k, v in self.deployment.engine.seen[index][3].items()}


@pytest.fixture(params=["vllm", "tgi"])
def serving_path(fake_oci: FakeOci, request: pytest.FixtureRequest) -> Iterator[Path_]:
    deployment = fake_oci.service(ModelDeployments).script(polls=0)
    if request.param == "vllm":
        vllm = FakeVllmApp(served="served", middleware=OciRoutes, served_model="served")
        with AsgiServer(vllm.app) as direct:
            deployment.upstream = direct.url  # the front door reaches vLLM's own server
            yield Path_("vllm", deployment, vllm.engine, f"{deployment.url}/predict/v1")
        return
    with FakeEngine("tgi").start() as engine, running_adapter("tgi", engine.url) as adapter:
        deployment.upstream = adapter
        yield Path_("tgi", deployment, engine, f"{deployment.url}/predict/v1")


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
@pytest.mark.parametrize("front_door_routes", [True, False], ids=["oci-maps-route", "container-maps-route"])
def test_langchain_oci_invokes_and_streams_with_the_route_header(
    fake_oci: FakeOci, serving_path: Path_, capsys: pytest.CaptureFixture[str], front_door_routes: bool
) -> None:
    """Whether OCI's front door maps the `route` header for a BYOC image is undocumented: either way the
    call lands on the engine's `/v1/chat/completions`."""
    pytest.importorskip("langchain_oci", reason="the clients extra (make test installs it)")
    serving_path.deployment.maps_route_header = front_door_routes
    namespace = run_openai_snippet(serving_path.base_url)
    capsys.readouterr()
    before = len(serving_path.routed())

    exec(compile(readme_snippet("langchain"), "README.md:snippet:langchain", "exec"), namespace)

    assert capsys.readouterr().out == f"{REPLY}\n{REPLY}\n"
    ocid = serving_path.deployment.id
    container_path = "/v1/chat/completions" if front_door_routes else "/predict"
    assert serving_path.routed()[before:] == [("POST", f"/{ocid}/predict", container_path)] * 2
    plain, streamed = serving_path.headers(before), serving_path.headers(before + 1)
    assert plain["route"] == streamed["route"] == "/v1/chat/completions"
    assert "enable-streaming" not in plain and streamed["enable-streaming"] == "true"
    assert [r.status for r in fake_oci.requests("Predict")] == [200, 200]
    # the engine got the OpenAI body as LangChain sent it on its chat route
    assert [path for path, _ in serving_path.engine.requests[-2:]] == ["/v1/chat/completions"] * 2
    assert [body.get("stream", False) for path, body in serving_path.engine.requests[-2:]] == [False, True]
    # what of ours routed the call drops the header; a call OCI routed reaches vLLM untouched, header and all
    routed_by_us = serving_path.image == "tgi" or not front_door_routes
    seen = [{k.lower() for k in headers} for headers in serving_path.engine.chat_headers[-2:]]
    assert [("route" in names) for names in seen] == [not routed_by_us] * 2
