"""The job artifact of a fine-tune without a training image: what it holds, that it is the same bytes for the
same code, and that its entrypoint script makes the pinned environment before running the job's command."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from components.training_artifact import ENTRYPOINT, REQUIREMENTS, build_job_artifact, requirements
from tests.conftest import PROJECT_DIR


def test_the_artifact_holds_the_entrypoint_its_packages_and_the_pins(tmp_path: Path) -> None:
    artifact = build_job_artifact(PROJECT_DIR, tmp_path)
    assert artifact.path.name == f"training-job-{artifact.digest[:12]}.zip"
    assert artifact.size == artifact.path.stat().st_size
    with zipfile.ZipFile(artifact.path) as packed:
        names = packed.namelist()
        pins = packed.read(REQUIREMENTS).decode().split()
        mode = packed.getinfo(ENTRYPOINT).external_attr >> 16
    assert ENTRYPOINT in names and "training/finetune.py" in names and "training/multinode.py" in names
    assert {name.split("/")[0] for name in names} == {
        "domain",
        "oci_runtime",
        "training",
        ENTRYPOINT,
        REQUIREMENTS,
    }
    assert "torch==2.13.0+cu126" in pins and "transformers==5.24.0" in pins and "oci==2.189.0" in pins
    assert all("==" in pin for pin in pins) and not any(pin.startswith("pulumi") for pin in pins)
    assert pins == requirements(PROJECT_DIR) and mode & 0o111


def test_the_same_code_makes_the_same_artifact(tmp_path: Path) -> None:
    first = build_job_artifact(PROJECT_DIR, tmp_path / "a")
    again = build_job_artifact(PROJECT_DIR, tmp_path / "b")
    assert first.digest == again.digest and first.path.read_bytes() == again.path.read_bytes()


def test_the_artifacts_code_imports_without_the_rest_of_the_project(tmp_path: Path) -> None:
    """Unpacked as the job unpacks it: the entrypoint and the wrapper import from the artifact alone."""
    artifact = build_job_artifact(PROJECT_DIR, tmp_path / "build")
    with zipfile.ZipFile(artifact.path) as packed:
        packed.extractall(tmp_path / "job")
    # The job installs the train extra's third-party packages; the project's own code must all come from
    # the artifact (PYTHONPATH is searched before this checkout's editable install).
    job = str(tmp_path / "job")
    code = (
        "import sys, training.finetune, training.multinode; "
        "own = [m for n, m in list(sys.modules.items()) if n.split('.')[0] in ('domain', 'oci_runtime', 'training')]; "
        f"assert own and all((getattr(m, '__file__', None) or {job!r}).startswith({job!r}) for m in own); "
        "assert not any(m.split('.')[0] in ('components', 'policy', 'serving', 'llmstack', 'pulumi') for m in sys.modules); "
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "job",
        env={"PYTHONPATH": str(tmp_path / "job")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def test_the_entrypoint_script_builds_once_then_runs_the_command_with_the_artifact_on_the_path(
    tmp_path: Path,
) -> None:
    """With a ready environment (marker present) the script only runs the job's command from the artifact."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / ".installed").touch()
    script = PROJECT_DIR / "training" / ENTRYPOINT
    done = subprocess.run(
        ["bash", str(script), "python", "-c", "import os, sys; print(sys.path[1] == os.getcwd())"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LLMSTACK_TRAIN_VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "True" and "installing" not in done.stdout
