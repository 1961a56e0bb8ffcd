"""Peak memory of the running process."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_mib() -> float:
    """This process's peak resident set size in MiB: ``VmHWM`` of ``/proc/self/status``,
    which starts afresh with the program a measurement runs in. (``ru_maxrss`` does not: a
    child started by ``subprocess`` reports at least its parent's peak.)"""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
