"""``--jobs K``: run the study's stages K at a time, each once the stages it needs are done.

A process stage runs in a thread of its own, which only waits for its process; short
in-process work (a cell's result, the HRNet width) runs on the main thread between them.
Among the stages that are ready, the first in the list goes first: the study lists them
seed by seed, so that an interrupted study already has whole seeds to compare.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Task:
    """One stage: ``work`` runs once every task named in ``deps`` has finished."""

    name: str
    work: Callable[[], None]
    deps: tuple[str, ...] = ()
    inline: bool = False  # run on the main thread (short, in-process)


def run_tasks(tasks: list[Task], jobs: int, stop: Callable[[], None]) -> int:
    """Run every task, at most ``jobs`` threaded ones at once; returns how many ran.

    The first failure, or an interrupt (KeyboardInterrupt, which the study's SIGTERM
    handler raises too), calls ``stop`` (which must make the running tasks return: it kills
    their processes), waits for every thread, and is raised again. The stages that were
    running are thus killed, not let finish: they are continued or run again next time.
    """
    names = {t.name for t in tasks}
    for t in tasks:
        missing = [d for d in t.deps if d not in names]
        assert not missing, f"{t.name} depends on {missing}, which is not a task"
    pending = list(tasks)
    done: set[str] = set()
    running: dict[str, threading.Thread] = {}
    finished: queue.Queue[tuple[str, BaseException | None]] = queue.Queue()

    def worker(task: Task) -> None:
        try:
            task.work()
        except BaseException as e:  # handed to the main thread, which decides
            finished.put((task.name, e))
        else:
            finished.put((task.name, None))

    def next_ready() -> Task | None:
        for t in pending:
            if all(d in done for d in t.deps) and (t.inline or len(running) < jobs):
                return t
        return None

    try:
        while pending or running:
            while (task := next_ready()) is not None:
                pending.remove(task)
                if task.inline:
                    task.work()
                    done.add(task.name)
                else:
                    thread = threading.Thread(target=worker, args=(task,), name=task.name,
                                              daemon=True)
                    running[task.name] = thread
                    thread.start()
            if not running:
                if not pending:
                    break
                raise AssertionError(f"stages waiting on each other: "
                                     f"{[t.name for t in pending]}")
            try:
                # A timeout, so that a signal's exception is raised here promptly.
                name, error = finished.get(timeout=1.0)
            except queue.Empty:
                continue
            running.pop(name).join()
            if error is not None:
                raise error
            done.add(name)
    except BaseException:
        stop()
        for thread in running.values():
            thread.join()
        raise
    return len(done)
