"""The OCI SDK's region table, written into domain/regions.py (domain imports no OCI SDK).

`python -m oci_runtime.regions` (`make regions`) rewrites the file from the installed `oci` package;
tests/test_oci_rules.py fails when the file and the SDK differ, so a new SDK's regions cannot be missed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import oci.regions

TARGET = Path(__file__).resolve().parents[1] / "domain" / "regions.py"


def sdk_regions() -> dict[str, tuple[str, str]]:
    """region id -> (short key, realm), as `oci.regions` has them."""
    keys = {name: key for key, name in oci.regions.REGIONS_SHORT_NAMES.items()}
    return {
        region: (keys.get(region, ""), oci.regions.REGION_REALMS.get(region, ""))
        for region in sorted(oci.regions.REGIONS)
    }


def render() -> str:
    rows = "\n".join(f'    "{r}": ("{k}", "{realm}"),' for r, (k, realm) in sdk_regions().items())
    return (
        f'"""OCI regions: id -> (short key, realm). Generated from oci {oci.__version__} (`oci.regions`) by\n'
        '`python -m oci_runtime.regions`; do not edit by hand."""\n\n'
        "from __future__ import annotations\n\n"
        f"REGIONS: dict[str, tuple[str, str]] = {{\n{rows}\n}}\n"
    )


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET} ({len(sdk_regions())} regions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
