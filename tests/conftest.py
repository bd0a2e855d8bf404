"""Shared pytest fixtures."""

from tests.fakeoci.fixtures import fake_oci, oci_identity  # noqa: F401  (the loopback fake OCI service)
