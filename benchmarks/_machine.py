"""Describe the machine a benchmark ran on (printed before its figures)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_description() -> str:
    """One line: CPU model, logical cores, memory, Python and platform."""
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split()[1])
        mem = f", {kb / 1024**2:.0f} GiB RAM"
    return (
        f"{cpu}, {os.cpu_count()} logical cores{mem}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}"
    )
