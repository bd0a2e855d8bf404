"""GPU shapes that OCI Data Science model deployments can run on.

Source: OCI Compute "GPU shapes" reference
(https://docs.oracle.com/en-us/iaas/Content/Compute/References/computeshapes.htm#gpushapes) and the Data
Science "supported compute shapes" list for model deployments, read 2026-11. GPU memory is per GPU, in GB
as the vendors state it (the A10's 24 GB is 24 GiB of HBM/GDDR, the figure the engines see).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class GpuShape:
    name: str
    gpu: str
    gpu_count: int
    gpu_memory_gb: float
    ocpus: int
    memory_gb: int

    @property
    def total_gpu_memory_gb(self) -> float:
        return self.gpu_count * self.gpu_memory_gb


def _shape(name: str, gpu: str, count: int, mem: float, ocpus: int, ram: int) -> GpuShape:
    return GpuShape(name=name, gpu=gpu, gpu_count=count, gpu_memory_gb=mem, ocpus=ocpus, memory_gb=ram)


SHAPES: dict[str, GpuShape] = {
    s.name: s
    for s in (
        _shape("VM.GPU2.1", "P100", 1, 16, 12, 72),
        _shape("BM.GPU2.2", "P100", 2, 16, 28, 192),
        _shape("VM.GPU3.1", "V100", 1, 16, 6, 90),
        _shape("VM.GPU3.2", "V100", 2, 16, 12, 180),
        _shape("VM.GPU3.4", "V100", 4, 16, 24, 360),
        _shape("BM.GPU3.8", "V100", 8, 16, 52, 768),
        _shape("VM.GPU.A10.1", "A10", 1, 24, 15, 240),
        _shape("VM.GPU.A10.2", "A10", 2, 24, 30, 480),
        _shape("BM.GPU.A10.4", "A10", 4, 24, 64, 1024),
        _shape("BM.GPU4.8", "A100-40GB", 8, 40, 64, 2048),
        _shape("BM.GPU.A100-v2.8", "A100-80GB", 8, 80, 128, 2048),
        _shape("BM.GPU.L40S.4", "L40S", 4, 48, 112, 1024),
        _shape("BM.GPU.H100.8", "H100", 8, 80, 112, 2048),
    )
}


def known_shape_names() -> list[str]:
    return sorted(SHAPES)
