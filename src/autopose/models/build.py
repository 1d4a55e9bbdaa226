"""Building a network from its architecture spec: what train, test, infer and export share.

An :class:`ArchSpec` names a network: a derived AutoPose network (a genotype and a width
multiplier) or a hand-designed baseline of :data:`autopose.models.MODELS` (a name and, for
the HRNets, a width). Its dict form is the ``arch`` entry of a checkpoint::

    {"kind": "derived", "genotype": {...}, "width_mult": 0.5, "num_joints": 17}
    {"kind": "baseline", "name": "hrnet_w32", "num_joints": 17}
        # "width_mult": 0.25 as well for a width-reduced HRNet (absent: width 1)

A new baseline is one entry in ``MODELS`` (and ``WIDTH_MULT_MODELS`` when its builder takes
``width_mult``); nothing here names one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from autopose.config import Config
from autopose.errors import UserError
from autopose.models import MODELS, WIDTH_MULT_MODELS
from autopose.models.derived import build_derived
from autopose.search_space.genotype import Genotype


@dataclass(frozen=True)
class ArchSpec:
    """One network: ``derived`` (``genotype`` and ``width_mult`` set) or ``baseline``
    (``name`` set; ``width_mult`` None means the published widths)."""

    kind: Literal["derived", "baseline"]
    num_joints: int
    genotype: Genotype | None = None
    name: str | None = None
    width_mult: float | None = None

    @classmethod
    def derived(cls, genotype: Genotype, width_mult: float | None, num_joints: int) -> ArchSpec:
        """A derived network (``width_mult`` None: the genotype's own)."""
        wm = float(genotype.width_mult if width_mult is None else width_mult)
        return cls("derived", int(num_joints), genotype=genotype, width_mult=wm)

    @classmethod
    def baseline(cls, name: str, num_joints: int, width_mult: float | None = None) -> ArchSpec:
        """A baseline of ``MODELS``.

        ``width_mult`` applies to the HRNets (``WIDTH_MULT_MODELS``); SimpleBaseline ignores
        it, as it did before HRNet could be width-reduced. It is kept only when it is not 1,
        so a full-width run's ``arch`` is the same as before the option existed.
        """
        if name not in MODELS:
            raise UserError(f"--model: unknown model {name!r} (known: {', '.join(MODELS)})")
        wm = None
        if width_mult is not None and float(width_mult) != 1.0 and name in WIDTH_MULT_MODELS:
            wm = float(width_mult)
        return cls("baseline", int(num_joints), name=name, width_mult=wm)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's ``arch`` entry (plain data, loadable with weights_only)."""
        if self.kind == "derived":
            assert self.genotype is not None
            return {"kind": "derived", "genotype": self.genotype.to_dict(),
                    "width_mult": self.width_mult, "num_joints": self.num_joints}
        arch: dict[str, Any] = {"kind": "baseline", "name": self.name,
                                "num_joints": self.num_joints}
        if self.width_mult is not None:
            arch["width_mult"] = self.width_mult
        return arch

    @classmethod
    def from_dict(cls, arch: Any, source: str = "<arch>") -> ArchSpec:
        """Validate an ``arch`` entry; UserError naming ``source`` and the field when bad."""
        if not isinstance(arch, dict):
            raise UserError(f"{source}: arch: expected a mapping")
        kind = arch.get("kind")
        k = arch.get("num_joints")
        if not isinstance(k, int) or k < 1:
            raise UserError(f"{source}: arch.num_joints: expected a positive integer, got {k!r}")
        if kind == "derived":
            genotype = Genotype.from_dict(arch.get("genotype"), f"{source}: arch.genotype")
            wm = arch.get("width_mult")
            if not isinstance(wm, (int, float)) or wm <= 0:
                raise UserError(f"{source}: arch.width_mult: expected a positive number, "
                                f"got {wm!r}")
            return cls("derived", k, genotype=genotype, width_mult=float(wm))
        if kind == "baseline":
            name = arch.get("name")
            if name not in MODELS:
                raise UserError(f"{source}: arch.name: unknown model {name!r} "
                                f"(known: {', '.join(MODELS)})")
            if "width_mult" not in arch:
                return cls("baseline", k, name=name)
            wm = arch["width_mult"]
            if not isinstance(wm, (int, float)) or isinstance(wm, bool) or not wm > 0:
                raise UserError(f"{source}: arch.width_mult: expected a positive number, "
                                f"got {wm!r}")
            if name not in WIDTH_MULT_MODELS:
                raise UserError(f"{source}: arch.width_mult: {name} has no width multiplier "
                                f"(only {', '.join(sorted(WIDTH_MULT_MODELS))})")
            return cls("baseline", k, name=name, width_mult=float(wm))
        raise UserError(f"{source}: arch.kind: expected 'derived' or 'baseline', got {kind!r}")

    def describe(self) -> str:
        """One line for logs (see :func:`describe_arch`)."""
        return describe_arch(self.to_dict())


def build_model(arch: ArchSpec | dict[str, Any], source: str = "<arch>") -> nn.Module:
    """The network ``arch`` describes, freshly initialised (on the CPU, or on the device of
    an enclosing ``torch.device`` context). A dict is a checkpoint's ``arch`` entry, checked
    first; ``source`` names it in errors."""
    spec = arch if isinstance(arch, ArchSpec) else ArchSpec.from_dict(arch, source)
    if spec.kind == "derived":
        assert spec.genotype is not None
        return build_derived(spec.genotype, width_mult=spec.width_mult,
                             num_joints=spec.num_joints)
    builder = MODELS[str(spec.name)]
    if spec.width_mult is None:
        return builder(num_joints=spec.num_joints)
    return builder(num_joints=spec.num_joints, width_mult=spec.width_mult)


def arch_for_genotype(genotype: Genotype, width_mult: float | None,
                      num_joints: int) -> dict[str, Any]:
    """The ``arch`` entry of a derived network (``width_mult`` None: the genotype's)."""
    return ArchSpec.derived(genotype, width_mult, num_joints).to_dict()


def arch_for_baseline(name: str, num_joints: int,
                      width_mult: float | None = None) -> dict[str, Any]:
    """The ``arch`` entry of a baseline of ``MODELS`` (see :meth:`ArchSpec.baseline`)."""
    return ArchSpec.baseline(name, num_joints, width_mult).to_dict()


def describe_arch(arch: dict[str, Any]) -> str:
    """One line for logs: ``derived network (width_mult 0.5, 17 joints)`` or
    ``hrnet_w32 (17 joints)``. Tolerates an unchecked entry (reports what it holds)."""
    if arch.get("kind") == "derived":
        return f"derived network (width_mult {arch['width_mult']:g}, {arch['num_joints']} joints)"
    if "width_mult" in arch:
        return (f"{arch.get('name')} (width_mult {arch['width_mult']:g}, "
                f"{arch.get('num_joints')} joints)")
    return f"{arch.get('name')} ({arch.get('num_joints')} joints)"


# ---------------------------------------------------------------------------- the command line


@dataclass
class ArchSource:
    """What the command line asked to train: a genotype file or a baseline's name."""

    genotype: Path | None = None
    model: str | None = None

    def require_one(self) -> None:
        """Exactly one of the two, or UserError."""
        if (self.genotype is None) == (self.model is None):
            raise UserError("autopose train: give exactly one of --genotype PATH or --model NAME")

    def check(self) -> None:
        """:meth:`require_one`, and a bad genotype file fails here, before any data is read."""
        self.require_one()
        if self.genotype is not None:
            Genotype.load(self.genotype)


def resolve_arch(source: ArchSource, cfg: Config, num_joints: int) -> dict[str, Any]:
    """The checkpoint ``arch`` entry of the network to train (``train.width_mult`` applied)."""
    source.require_one()
    if source.genotype is not None:
        genotype = Genotype.load(source.genotype)
        return arch_for_genotype(genotype, cfg.train.width_mult, num_joints)
    return arch_for_baseline(str(source.model), num_joints, cfg.train.width_mult)
