"""Shared fixtures: the real sample data in ../shared/data, and tiny configs built on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread per test, restored afterwards.

    The tests use tiny tensors, which gain nothing from a second thread; and when other jobs
    share the two cores, preempted OpenMP threads spin at every barrier (a directory of
    model tests took 186 s with two threads against 42 s with one, under the same load).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _require_shared() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing; tests on real data must run in CI")
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require_shared()


@pytest.fixture(scope="session")
def coco_mini(shared_data: Path) -> dict[str, str]:
    root = shared_data / "coco-mini"
    return {"images": str(root / "train2017"),
            "ann": str(root / "annotations" / "person_keypoints_train2017.json")}


@pytest.fixture(scope="session")
def mmpose_coco(shared_data: Path) -> dict[str, str]:
    root = shared_data / "mmpose-samples" / "coco"
    return {"images": str(root), "ann": str(root / "test_coco.json"),
            "det": str(root / "test_coco_det_AP_H_56.json")}


@pytest.fixture(scope="session")
def mmpose_mpii(shared_data: Path) -> dict[str, str]:
    root = shared_data / "mmpose-samples" / "mpii"
    return {"images": str(root), "ann": str(root / "test_mpii.json")}


COCO_CONFIG = str(REPO / "configs" / "coco" / "autopose_256x192.yaml")


def val_overrides(images: str, ann: str, **extra: object) -> list[str]:
    """``--config`` of the COCO 256x192 setting and ``key=value`` overrides pointing its val
    split at a COCO-format set."""
    out = ["--config", COCO_CONFIG, f"data.val.images={images}", f"data.val.ann={ann}",
           "data.workers=0"]
    out += [f"{k}={v}" for k, v in extra.items()]
    return out


# The longest modules first. `make test` hands whole files to two workers (--dist loadfile)
# in collection order; collected last, as their names put them, they ran alone at the end
# (the suite took 551 s on 2 cores this way).
LONGEST_FIRST = ("tests/search/test_search.py", "tests/study/test_run.py",
                 "tests/test_bench_ranking.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every other order is kept
