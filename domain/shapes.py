"""GPU shapes that OCI Data Science model deployments can run on.

Sources, read 2026-11:
- Shape names and GPU memory: Oracle's own Data Science tooling, oracle/accelerated-data-science
  `ads/aqua/resources/gpu_shapes_index.json` and `shapes.json` (the shapes AI Quick Actions offers for
  model deployments), cross-checked with the OCI Compute "GPU shapes" reference
  (https://docs.oracle.com/en-us/iaas/Content/Compute/References/computeshapes.htm#bm-gpu).
- OCPUs and host memory: the same Compute reference.

Names are exact and case-sensitive. The L40S bare-metal shape has two names: Data Science lists
`BM.GPU.L40S-NC.4` (no cluster network), Compute also sells `BM.GPU.L40S.4`; both are kept. GPU memory is
per GPU, in GB as the vendors state it.
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
        _shape("BM.GPU.B4.8", "A100-40GB", 8, 40, 64, 2048),
        _shape("BM.GPU.A100-v2.8", "A100-80GB", 8, 80, 128, 2048),
        _shape("BM.GPU.L40S-NC.4", "L40S", 4, 48, 112, 1024),
        _shape("BM.GPU.L40S.4", "L40S", 4, 48, 112, 1024),
        _shape("BM.GPU.H100.8", "H100", 8, 80, 112, 2048),
        _shape("BM.GPU.H200.8", "H200", 8, 141, 112, 3072),
    )
}


def known_shape_names() -> list[str]:
    return sorted(SHAPES)
