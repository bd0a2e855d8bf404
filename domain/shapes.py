"""GPU shapes that OCI Data Science model deployments can run on.

Sources, read 2026-11:
- Shape names and GPU memory: Oracle's own Data Science tooling, oracle/accelerated-data-science
  `ads/aqua/resources/gpu_shapes_index.json` and `shapes.json` (the shapes AI Quick Actions offers for
  model deployments), cross-checked with the OCI Compute "GPU shapes" reference
  (https://docs.oracle.com/en-us/iaas/Content/Compute/References/computeshapes.htm#bm-gpu).
- OCPUs and host memory: the same Compute reference.

Compute capability (CUDA "sm" version) per GPU: NVIDIA's published figures; vLLM's quantization page names
them ("Volta refers to SM 7.0, Turing to SM 7.5, Ampere to SM 8.0/8.6, Ada to SM 8.9, and Hopper to SM
9.0"). The MI300X is AMD (ROCm, no compute capability): it runs only a ROCm build of an engine.

What can run where (ENGINE_MIN_CC, QUANTIZATION_MIN_CC, `serving_problems`): vLLM and TGI need compute
capability >= 7.0 (vllm-project/vllm#963: its build refuses anything older, so no P100); from vLLM's
"Supported Hardware" table for quantization: AWQ is not supported on Volta (7.0), Turing (7.5) and newer
are; FP8 runs natively from 8.9 and as weight-only W8A16 (FP8 Marlin) from 7.5; INT8 (W8A8) is not
supported on Volta; GPTQ runs from Volta. So V100 shapes refuse awq, fp8 and int8.

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
    compute_capability: float | None  # None: not an NVIDIA GPU (the MI300X: ROCm)

    @property
    def total_gpu_memory_gb(self) -> float:
        return self.gpu_count * self.gpu_memory_gb


_CC = {"P100": 6.0, "V100": 7.0, "A10": 8.6, "A100-40GB": 8.0, "A100-80GB": 8.0, "L40S": 8.9}
_CC |= {"H100": 9.0, "H200": 9.0}


def _shape(name: str, gpu: str, count: int, mem: float, ocpus: int, ram: int) -> GpuShape:
    return GpuShape(
        name=name,
        gpu=gpu,
        gpu_count=count,
        gpu_memory_gb=mem,
        ocpus=ocpus,
        memory_gb=ram,
        compute_capability=_CC.get(gpu),
    )


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

# Shapes Data Science offers that this project's (CUDA) images cannot use, with the reason settings give.
ROCM_SHAPES: dict[str, str] = {
    "BM.GPU.MI300X.8": "8 x AMD MI300X: runs only a ROCm build of vLLM; the serving images here are CUDA",
}

ENGINE_MIN_CC = 7.0  # vLLM and TGI alike
QUANTIZATION_MIN_CC: dict[str, float] = {"awq": 7.5, "fp8": 7.5, "int8": 7.5, "gptq": 7.0}


def known_shape_names() -> list[str]:
    return sorted(SHAPES)


def serving_problems(engine: str, shape_name: str, quantization: str = "none") -> list[str]:
    """Why `engine` with `quantization` cannot run on `shape_name`, each ending in what is accepted (as a
    settings problem does); empty when it can (or the shape is unknown here: the settings name unknown shapes
    themselves)."""
    if shape_name in ROCM_SHAPES:
        return [f"{shape_name} ({ROCM_SHAPES[shape_name]}); accepted: an NVIDIA shape"]
    shape = SHAPES.get(shape_name)
    if shape is None or shape.compute_capability is None:
        return []
    cc = shape.compute_capability
    ok = sorted(n for n, s in SHAPES.items() if (s.compute_capability or 0) >= ENGINE_MIN_CC)
    if cc < ENGINE_MIN_CC:
        return [
            f"{engine} needs compute capability {ENGINE_MIN_CC} or newer; {shape.gpu} ({shape_name}) has "
            f"{cc}; accepted: a shape it runs on: {', '.join(ok)}"
        ]
    needed = QUANTIZATION_MIN_CC.get(quantization)
    if needed is not None and cc < needed:
        fits = sorted(n for n, s in SHAPES.items() if (s.compute_capability or 0) >= needed)
        return [
            f"{quantization} quantization needs compute capability {needed} or newer; {shape.gpu} "
            f"({shape_name}) has {cc}; accepted: gptq or none there, or one of {', '.join(fits)}"
        ]
    return []
