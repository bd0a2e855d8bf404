"""The job artifact of a fine-tune without a training image: the entrypoint's code, zipped for the job.

A Data Science job on a service conda environment runs a file of its artifact (`JOB_RUN_ENTRYPOINT`); the
artifact here is `training/job_entry.sh` (which makes the pinned environment, see there), the packages the
entrypoint imports (`domain/`, `oci_runtime/`, `training/`: what `training/Dockerfile` copies) and
`requirements-train.txt`, the train extra's pins from pyproject.toml with torch's CUDA 12.6 build. The zip is
built the same way each time (sorted names, fixed dates), so its name (a digest of its bytes) changes only
when the code does, and with it the job.
"""

from __future__ import annotations

import hashlib
import io
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ENTRYPOINT = "job_entry.sh"
REQUIREMENTS = "requirements-train.txt"
PACKAGES = ("domain", "oci_runtime", "training")
TORCH_CUDA = "torch==2.13.0+cu126"  # PyPI's torch 2.13.0 wheel is built for CUDA 13 (driver >= 580)
QLORA = "bitsandbytes==0.50.2"
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, kw_only=True)
class JobArtifact:
    path: Path
    size: int
    digest: str  # sha256 of the zip's bytes

    @property
    def file_name(self) -> str:
        return self.path.name


def requirements(project_dir: Path) -> list[str]:
    """The train extra and the runtime extra it includes, pinned as pyproject.toml pins them."""
    project = tomllib.loads((project_dir / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    pins = [*project["dependencies"], *extras["runtime"], *extras["train"]]
    out = [p for p in pins if not p.startswith("oci-llm-stack")]
    out = [TORCH_CUDA if p.split("==")[0] == "torch" else p for p in out]
    return [*out, QLORA]


def _files(project_dir: Path) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    for package in PACKAGES:
        for path in sorted((project_dir / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files.append((path.relative_to(project_dir).as_posix(), path.read_bytes()))
    files.append((ENTRYPOINT, (project_dir / "training" / ENTRYPOINT).read_bytes()))
    files.append((REQUIREMENTS, ("\n".join(requirements(project_dir)) + "\n").encode()))
    return sorted(files)


def build_job_artifact(project_dir: Path, build_dir: Path) -> JobArtifact:
    """Write `training-job-<digest>.zip` under `build_dir` (once per content) and describe it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as packed:
        for name, data in _files(project_dir):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if name.endswith(".sh") else 0o644) << 16
            packed.writestr(info, data)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path = build_dir / f"training-job-{digest[:12]}.zip"
    if not path.is_file() or path.read_bytes() != data:
        build_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)
    return JobArtifact(path=path, size=len(data), digest=digest)
