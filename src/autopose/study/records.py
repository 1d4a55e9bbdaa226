"""A study's small records: the stage markers in ``--out``, mirrored in ``--records``.

The study takes hours on two cores, longer than a session whose ``runs/`` folder may be
gone the next day. ``--records DIR`` (a folder to commit, e.g. ``docs/study-records``)
keeps a copy of every finished stage's record, written atomically as the stage ends::

    DIR/ROW/seedS/search.json, train.json, test.json, result.json   the stage markers
    DIR/ROW/seedS/genotype.json                                       the search's genotype
    DIR/hrnet_w32/width.json                                          the matched width

Small JSON only, never checkpoints. A marker missing from ``--out`` is read from there
(and restored into ``--out`` before the study runs), so a fresh clone with an empty
``--out`` re-runs no finished stage. Where both hold a marker, ``--out``'s is the one used
and the one copied to ``--records``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autopose.io import read_json, write_json, write_text


def marker_name(row: str, seed: int, kind: str) -> str:
    """``ROW/seedS/KIND.json``: a cell's marker, the same path under both folders."""
    return f"{row}/seed{seed}/{kind}.json"


class Markers:
    """The records of one study: those in ``out``, else those in ``records``."""

    def __init__(self, out: Path, records: Path | None) -> None:
        self.out = out
        self.records = records

    def _both(self, name: str) -> list[Path]:
        return [self.out / name] + ([] if self.records is None else [self.records / name])

    def where(self, name: str) -> Path | None:
        """The file :meth:`read` reads ``name`` from, or None."""
        return next((p for p in self._both(name) if p.is_file()), None)

    def read(self, name: str) -> dict[str, Any] | None:
        """The record ``name`` (out's, else records'), or None when neither has it."""
        path = self.where(name)
        return None if path is None else read_json(path, "study record")

    def write(self, name: str, rec: dict[str, Any]) -> None:
        """Write ``rec`` atomically to out, then to records (the copy to commit)."""
        for path in self._both(name):
            write_json(path, rec)

    def forget(self, name: str) -> None:
        """Delete a stale record from both folders (its stage runs again)."""
        for path in self._both(name):
            path.unlink(missing_ok=True)

    def restore(self, name: str) -> None:
        """Make out and records hold the same ``name``: records' is copied into out when
        out lacks it, out's into records when records lacks it or holds another."""
        if self.records is not None:
            _mirror(self.out / name, self.records / name)

    # A search's genotype lives in its run folder under out, beside the markers in records.

    def _genotypes(self, row: str, seed: int) -> tuple[Path, Path | None]:
        cell = f"{row}/seed{seed}"
        return (self.out / cell / "search" / "genotype.json",
                None if self.records is None else self.records / cell / "genotype.json")

    def has_genotype(self, row: str, seed: int) -> bool:
        return any(p is not None and p.is_file() for p in self._genotypes(row, seed))

    def restore_genotype(self, row: str, seed: int) -> None:
        """As :meth:`restore`, for the genotype of a (row, seed)'s search."""
        mine, kept = self._genotypes(row, seed)
        if kept is not None:
            _mirror(mine, kept)

    def save_genotype(self, row: str, seed: int) -> None:
        """Copy a finished search's genotype into records."""
        self.restore_genotype(row, seed)


def _mirror(mine: Path, kept: Path) -> None:
    """``kept`` copied to a missing ``mine``; else ``mine`` copied over a missing or
    different ``kept``."""
    if not mine.is_file():
        if kept.is_file():
            write_text(mine, kept.read_text())
    elif not kept.is_file() or kept.read_text() != mine.read_text():
        write_text(kept, mine.read_text())
