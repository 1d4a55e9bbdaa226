"""Helpers for the tests of drivers that run stage processes (``autopose study``,
``bench/ranking.py``).

Imported by name (``from process_helpers import ...``), as ``conftest`` is: pytest puts
``tests/`` on ``sys.path`` for the conftest beside this file.
"""

from __future__ import annotations

import time
from pathlib import Path


def processes_naming(path: Path, wait_s: float = 15) -> list[str]:
    """Command lines of the live processes that name ``path``, once none is left or after
    ``wait_s`` (a killed child may take a moment to be reaped on a loaded machine: seen
    once under two other trainings)."""
    deadline = time.monotonic() + wait_s
    while True:
        mine = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    cmd = (p / "cmdline").read_bytes().decode(errors="replace")
                    state = (p / "stat").read_text().split(") ")[-1][:1]
                except OSError:
                    continue
                if str(path) in cmd and state != "Z":
                    mine.append(cmd.replace("\0", " "))
        if not mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.5)
