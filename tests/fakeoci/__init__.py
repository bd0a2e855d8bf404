"""A loopback fake of the OCI services the project calls, for tests and benchmarks (see core.py).

    with FakeOci(tmp_path / "oci").start() as fake:
        identity = TestIdentity.create(tmp_path / "auth")
        fake.trust(identity)
        client = oci.object_storage.ObjectStorageClient(
            oci.config.from_file(str(identity.config_file)), service_endpoint=fake.endpoint)

In pytest, the `fake_oci` fixture does this and stops the server afterwards (tests/fakeoci/fixtures.py).
On its own: `python -m tests.fakeoci --port 8555 --data /tmp/fakeoci` prints the endpoint and config file.
"""

from tests.fakeoci.core import (
    FakeOci,
    Fault,
    FaultPlan,
    HttpError,
    LoggedRequest,
    Request,
    Response,
    Service,
    TestIdentity,
    empty_response,
    error_response,
    json_response,
    route,
)

__all__ = [
    "FakeOci",
    "Fault",
    "FaultPlan",
    "HttpError",
    "LoggedRequest",
    "Request",
    "Response",
    "Service",
    "TestIdentity",
    "empty_response",
    "error_response",
    "json_response",
    "route",
]
