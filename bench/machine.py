"""What the figures were measured on, stored with every result, and where the results go."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"  # bench/results/<bench>.json


def describe() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow-cpu"),
        "aiortc": version("aiortc"),
        "av": version("av"),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(figures: Any, out: Path) -> None:
    """Write a benchmark's figures to `out` as indented JSON (its folder made when missing)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
