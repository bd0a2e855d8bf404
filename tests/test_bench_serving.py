"""`make bench-serving` in miniature: it runs, and its last line is the JSON object the README quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_serving_bench_ends_with_its_json_line() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "bench/serving.py",
            "--tokens",
            "4",
            "--rate",
            "400",
            "--concurrency",
            "1,2",
            "--unpaced-tokens",
            "8",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("cpus ") and lines[1].startswith("unpaced")
    assert any(line.startswith("paced") for line in lines)
    last = json.loads(lines[-1])
    assert set(last) >= {"direct_tokens_s", "ours_tokens_s", "ratio", "added_ttft_ms_p50", "concurrency"}
    assert last["concurrency"] == 2 and last["direct_tokens_s"] > 0 and last["ours_tokens_s"] > 0
