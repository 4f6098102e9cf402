"""The machine a benchmark ran on, for the JSON reports of bench/*.py (imported as ``machine`` when a
script runs as ``python bench/NAME.py``: its folder is first on sys.path)."""
from __future__ import annotations

import os
from pathlib import Path


def machine() -> dict:
    """CPU count, CPU model (/proc/cpuinfo), RAM and load average, for the JSON report."""
    info = {"cpu_count": os.cpu_count(), "cpu_model": "", "ram_gib": 0.0, "loadavg": list(os.getloadavg())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info
