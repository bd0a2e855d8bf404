"""Fixtures for the fine-tuning tests."""

from __future__ import annotations

import pytest

from tests.training.memory_store import MemoryStore


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()
