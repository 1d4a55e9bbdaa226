"""``autopose.study.schedule``: dependencies, the --jobs limit, failures and interrupts."""

from __future__ import annotations

import threading
import time

import pytest

from autopose.study.schedule import Task, run_tasks


def test_dependencies_and_order_with_one_job() -> None:
    log: list[str] = []

    def work(name: str) -> Task:
        return Task(name, lambda: log.append(name))

    def chain() -> list[Task]:
        tasks = [work("a/search"), work("a/train"), work("a/test"), work("b/search"),
                 work("b/train")]
        tasks[1].deps, tasks[2].deps = ("a/search",), ("a/train",)
        tasks[4].deps = ("b/search", "width")
        tasks.insert(0, Task("width", lambda: log.append("width"), deps=("a/search",),
                             inline=True))
        return tasks

    assert run_tasks(chain(), 1, lambda: None) == 6
    # Among the ready tasks the first in the list goes first; the inline width as soon as
    # its search is done.
    assert log == ["a/search", "width", "a/train", "a/test", "b/search", "b/train"]
    log.clear()
    tasks = chain()
    tasks.append(tasks.pop(4))  # b's search after b's training in the list: still after
    tasks.insert(1, tasks.pop(3))  # a's test before its training: still after it
    run_tasks(tasks, 1, lambda: None)
    assert log == ["a/search", "width", "a/train", "a/test", "b/search", "b/train"]


def test_at_most_jobs_threaded_tasks_at_once_and_inline_on_the_main_thread() -> None:
    lock = threading.Lock()
    now, peak, threads = [0], [0], set()

    def stage() -> None:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1

    def inline() -> None:
        threads.add(threading.current_thread() is threading.main_thread())

    tasks = [Task(f"s{i}", stage) for i in range(7)]
    tasks += [Task(f"r{i}", inline, deps=(f"s{i}",), inline=True) for i in range(7)]
    assert run_tasks(tasks, 3, lambda: None) == 14
    assert peak[0] == 3
    assert threads == {True}


def test_a_failure_stops_the_running_stages_and_starts_no_more() -> None:
    stopped = threading.Event()
    started: list[str] = []

    def running() -> None:
        started.append("long")
        assert stopped.wait(10), "stop() was not called"  # a process killed by stop()
        raise RuntimeError("killed")

    def failing() -> None:
        started.append("bad")
        time.sleep(0.05)
        raise ValueError("stage failed")

    tasks = [Task("long", running), Task("bad", failing), Task("later", lambda: started.append(
        "later")), Task("after", lambda: started.append("after"), deps=("bad",))]
    with pytest.raises(ValueError, match="stage failed"):
        run_tasks(tasks, 2, stopped.set)
    assert stopped.is_set()
    assert sorted(started) == ["bad", "long"]  # nothing started after the failure


def test_an_interrupt_stops_the_running_stages() -> None:
    stopped = threading.Event()

    def interrupted() -> None:
        raise KeyboardInterrupt  # as the SIGTERM handler raises it on the main thread

    tasks = [Task("long", lambda: None if stopped.wait(10) else None),
             Task("width", interrupted, inline=True)]
    with pytest.raises(KeyboardInterrupt):
        run_tasks(tasks, 2, stopped.set)
    assert stopped.is_set()
