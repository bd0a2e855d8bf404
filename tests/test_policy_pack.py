"""The CrossGuard pack builds and serves the rules the way the Pulumi CLI starts it.

`python -u -m pulumi.policy <engine> policy` is what the CLI's analyzer plugin runs; the `PolicyPack`
constructor prints the gRPC port and blocks, so the pack runs in a subprocess and the test talks to it as
the engine would: GetAnalyzerInfo, Configure (a stack's policy config), Analyze (one resource).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2

from components.pulumi_internals import analyzer_pb2, analyzer_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60
CALL_TIMEOUT_S = 20


def _first_line(stream: Any, timeout: float) -> str | None:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "policy"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(process.stdout, START_TIMEOUT_S)
        if not line or not line.strip().isdigit():
            process.kill()
            _, err = process.communicate(timeout=10)
            pytest.fail(f"the policy pack did not start serving: {line!r}\n{err[-2000:]}")
        channel = grpc.insecure_channel(f"127.0.0.1:{line.strip()}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=10)


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


LATEST = {
    "freeformTags": {"environment": "prod", "team": "ml-platform"},
    "modelDeploymentConfigurationDetails": {
        "modelConfigurationDetails": {
            "instanceConfiguration": {"instanceShapeName": "VM.GPU.A10.1"},
            "scalingPolicy": {"policyType": "FIXED_SIZE", "instanceCount": 1},
        },
        "environmentConfigurationDetails": {
            "environmentConfigurationType": "OCIR_CONTAINER",
            "image": "iad.ocir.io/ns/llm/serving:latest",
        },
    },
    "categoryLogDetails": {
        "predict": {"logGroupId": "g", "logId": "p"},
        "access": {"logGroupId": "g", "logId": "a"},
    },
}


def _analyze(stub: analyzer_pb2_grpc.AnalyzerStub, inputs: dict[str, Any]) -> dict[str, tuple[str, int]]:
    request = analyzer_pb2.AnalyzeRequest(
        type="oci:DataScience/modelDeployment:ModelDeployment",
        properties=_struct(inputs),
        urn="urn:pulumi:prod::oci-llm-stack::oci:DataScience/modelDeployment:ModelDeployment::m",
        name="m",
    )
    response = stub.Analyze(request, timeout=CALL_TIMEOUT_S)
    return {d.policyName: (d.message, d.enforcementLevel) for d in response.diagnostics}


def test_pack_lists_every_rule_with_its_level_and_schema(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    from policy.rules import RULES

    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=CALL_TIMEOUT_S)
    assert info.name == "oci-llm-stack-guardrails"
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert list(levels) == [rule.name for rule in RULES]
    assert levels["prod-redundancy"] == analyzer_pb2.ADVISORY
    assert levels["image-pinned-by-digest"] == analyzer_pb2.MANDATORY
    schema = {p.name: dict(p.configSchema.properties) for p in info.policies}
    assert schema["log-retention-minimum"]["minimumDays"]["default"] == 30


def test_pack_reports_a_latest_image_and_honours_the_prod_config(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    found = _analyze(analyzer, LATEST)
    assert found["image-pinned-by-digest"][1] == analyzer_pb2.MANDATORY
    assert "tag 'latest'" in found["image-pinned-by-digest"][0]
    assert found["prod-redundancy"][1] == analyzer_pb2.ADVISORY

    prod = json.loads((ROOT / "policy" / "config" / "prod.json").read_text())
    configs = {}
    for name, value in prod.items():
        body = dict(value) if isinstance(value, dict) else {"enforcementLevel": value}
        level = {"advisory": analyzer_pb2.ADVISORY, "mandatory": analyzer_pb2.MANDATORY}[
            body.pop("enforcementLevel", "mandatory")
        ]
        configs[name] = analyzer_pb2.PolicyConfig(enforcementLevel=level, properties=_struct(body))
    analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=configs), timeout=CALL_TIMEOUT_S)

    found = _analyze(analyzer, LATEST)
    assert found["prod-redundancy"][1] == analyzer_pb2.MANDATORY
    assert "cost-center missing" in found["required-tags"][0]
