"""Stage processes: each stage is a fresh ``python -m autopose`` process, started from a
worker thread that waits for it, and killable from the main thread (Ctrl-C, SIGTERM, or
another stage's failure); and how a driver of such stages ends. Shared with
``bench/ranking.py``."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autopose.errors import UserError
from autopose.io import say


class StageFailed(Exception):
    """A stage's process ended with a non-zero exit code (the study stops)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Processes:
    """The stage processes running now, so that :meth:`stop` can kill them all."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lock = threading.Lock()
        self.live: set[subprocess.Popen] = set()
        self.stopping = False

    def run(self, argv: list[str], log: Path) -> dict[str, Any]:
        """Run ``argv``, its output appended to ``log``; returns ``exit_code``, ``wall_s``
        and ``cpu_s``: user + system CPU time from ``os.wait4``, which counts the process
        and every child it waited for (data loaders)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        with open(log, "ab") as f:
            f.write(f"\n$ {shlex.join(argv)}\n".encode())
            f.flush()
            with self.lock:
                # Checked under the lock: no process starts after stop() killed the others.
                if self.stopping:
                    raise StageFailed("stopped", 1)
                proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                        env=self.env)
                self.live.add(proc)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                with self.lock:
                    self.live.discard(proc)
        # wait4 reaped the child: tell Popen, so that it never waits for the pid again.
        proc.returncode = os.waitstatus_to_exitcode(status)
        return {"exit_code": proc.returncode, "wall_s": time.monotonic() - start,
                "cpu_s": usage.ru_utime + usage.ru_stime}

    def stop(self) -> None:
        """Kill every running stage process, and start no more. Their worker threads see
        them end (a non-zero exit) and return."""
        with self.lock:
            self.stopping = True
            for proc in self.live:
                proc.kill()


def log_tail(log: Path, lines: int = 15) -> str:
    """The last lines of a stage's log, progress bars' carriage returns folded."""
    text = log.read_text(errors="replace").replace("\r", "\n")
    kept = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def run_stage(procs: Processes, argv: list[str], log: Path, what: str,
              who: str) -> dict[str, Any]:
    """Run a stage, print one line before and after it (``who: what ...``), and raise
    StageFailed when it fails: exit code 2 when the stage itself reported bad input (its
    own exit code 2), 1 otherwise."""
    say(f"{who}: {what} ...")
    result = procs.run(argv, log)
    if result["exit_code"] != 0:
        code = result["exit_code"]
        # The first line says it all: the stage's own last line (its one-line error when
        # it exited 2). A crash's traceback follows, with the log and the command.
        tail = log_tail(log, 1 if code == 2 else 15).splitlines()
        last = tail[-1] if tail else "(no output)"
        detail = "" if code == 2 else "\n" + "\n".join(tail)
        raise StageFailed(f"{what} failed (exit code {code}): {last}\n  log {log}\n  "
                          f"command: {shlex.join(argv)}{detail}", 2 if code == 2 else 1)
    say(f"{who}: {what}: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU")
    return result


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so that the running stages' processes are killed
    with the driver instead of running on beside a resumed one."""
    raise KeyboardInterrupt


def run_driver(who: str, work: Callable[[], str]) -> int:
    """Run a driver's ``work`` (the study, the ranking) with SIGTERM taken as Ctrl-C, print
    what it returns, and turn its end into an exit code: 0; 2 for bad input (one line); a
    failed stage's (2 when the stage reported bad input, else 1); 130 when interrupted."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = work()
    except UserError as e:
        print(f"{who}: error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"{who}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{who}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(summary, end="")
    return 0
