"""pytest fixtures: a fresh fake per test, a test identity per session, SDK clients pointed at the fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeoci.core import FakeOci, TestIdentity


@pytest.fixture(scope="session")
def oci_identity(tmp_path_factory: pytest.TempPathFactory) -> TestIdentity:
    """An RSA key and an SDK config file (profile DEFAULT) that the fake trusts."""
    return TestIdentity.create(tmp_path_factory.mktemp("oci-auth"))


@pytest.fixture
def fake_oci(tmp_path: Path, oci_identity: TestIdentity) -> Iterator[FakeOci]:
    """A running fake on 127.0.0.1 (any free port), its bytes under tmp_path; stopped after the test.

    The test fails if a fake handler crashed (`fake.errors`): a bug in the fake must not pass as a retry.
    """
    fake = FakeOci(tmp_path / "fakeoci")
    fake.trust(oci_identity)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
    assert not fake.errors, f"the fake OCI service failed: {fake.errors}"
