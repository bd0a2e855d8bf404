"""An in-memory Object Storage that implements oci_runtime.storage.ObjectStore, for the fine-tuning tests."""

from __future__ import annotations

from pathlib import Path


class MemoryStore:
    """Objects keyed by (namespace, bucket, name); records the order of uploads."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], bytes] = {}
        self.uploads: list[str] = []

    def put(self, namespace: str, bucket: str, name: str, data: bytes) -> None:
        self.objects[(namespace, bucket, name)] = data

    def names(self, namespace: str, bucket: str) -> list[str]:
        return sorted(n for (ns, b, n) in self.objects if ns == namespace and b == bucket)

    def list_names(self, namespace: str, bucket: str, prefix: str) -> list[str]:
        return [n for n in self.names(namespace, bucket) if n.startswith(prefix)]

    def download(self, namespace: str, bucket: str, name: str, dest: Path) -> None:
        dest.write_bytes(self.objects[(namespace, bucket, name)])

    def upload(self, namespace: str, bucket: str, name: str, src: Path) -> None:
        self.objects[(namespace, bucket, name)] = src.read_bytes()
        self.uploads.append(name)

    def delete(self, namespace: str, bucket: str, name: str) -> None:
        self.objects.pop((namespace, bucket, name), None)
