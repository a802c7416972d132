"""The claim, its tests, the verdict rule and the verdict.

A :class:`Claim` is tested by one or more :class:`Test` s. A test is a statistic of the
experiment's :class:`~jaxopt_lab.compare.Results` (a pure function returning a
:class:`~jaxopt_lab.claims.measure.Estimate` with its 95% interval over seeds), the side
of a threshold the claim puts it on (``direction``) and, where the source gives a number,
the published value. The verdict of one test is read from the interval only
(:func:`decide`), never from a point estimate of one run:

* ``greater`` (the claim says ``statistic > threshold``): ``confirmed`` when the whole
  interval lies above the threshold (``lo > threshold``), ``refuted`` when it lies at or
  below it (``hi <= threshold``), ``mixed`` (not resolved at this many seeds) otherwise.
* ``less``: the mirror image (``hi < threshold`` / ``lo >= threshold``).
* ``within`` a band ``(a, b)`` around a published value (an equivalence test):
  ``confirmed`` when the interval lies inside the band, ``refuted`` when it misses the
  band entirely, ``mixed`` when it straddles an edge.

A claim is ``confirmed`` when every test it could run is confirmed, ``refuted`` when
every one is refuted, ``mixed`` otherwise; ``untested`` (with the reason) when no
experiment tests it yet or its run lacks what every test needs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from jaxopt_lab.claims.measure import Estimate, MissingData

VERDICTS = ("confirmed", "refuted", "mixed", "untested")
DIRECTIONS = ("greater", "less", "within")


@dataclasses.dataclass(frozen=True)
class Test:
    """One statistic of a claim and where the claim puts it.

    Attributes:
      label: what is measured, in words (one ledger line).
      statistic: ``statistic(results) -> Estimate`` (a pure function of the Results).
      direction: ``"greater"``, ``"less"`` or ``"within"``.
      threshold: a number (greater / less) or a band ``(a, b)`` (within).
      published: the source's number for this statistic, in words (None: it gives none).
    """

    label: str
    statistic: Callable[[Any], Estimate]
    direction: str
    threshold: float | tuple[float, float]
    published: str | None = None

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.direction == "within":
            a, b = self.threshold
            if not a <= b:
                raise ValueError(f"threshold band must have a <= b, got {self.threshold!r}")
        elif not isinstance(self.threshold, int | float):
            raise TypeError(f"threshold must be a number for {self.direction!r}, got "
                            f"{self.threshold!r}")

    def rule(self) -> str:
        """The test's hypothesis in symbols, e.g. ``> 0`` or ``in [0.55, 0.85]``."""
        if self.direction == "within":
            a, b = self.threshold
            return f"in [{_num(a)}, {_num(b)}]"
        return f"{'>' if self.direction == 'greater' else '<'} {_num(self.threshold)}"


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of the teaching material, the experiment that tests it, and its tests.

    Attributes:
      id: ``"C1"`` ... (``../shared/CLAIMS.md`` numbering).
      words: the claim in words.
      source: the source's title.
      experiment: registered experiment name, or None when none tests it yet.
      tests: the :class:`Test` s (empty when untested).
      statistic: the headline statistic in words (the ledger's column).
      figures: figure names of the run directory that show it (without ``.png``; shell
        wildcards allowed, e.g. ``R_split_*``).
      config: ``config(preset, module) -> Config`` of the run (None: the experiment's
        own ``Config.quick()`` / ``Config.full()``).
      run_tag: names a run of a non-default config (claims sharing a tag share the run).
      untested: why no experiment tests it (None when tested).
      note: what the test does not cover, or how it differs from the source's setting.
    """

    id: str
    words: str
    source: str
    experiment: str | None = None
    tests: tuple[Test, ...] = ()
    statistic: str = ""
    figures: tuple[str, ...] = ()
    config: Callable[[str, Any], Any] | None = None
    run_tag: str = ""
    untested: str | None = None
    note: str = ""

    def __post_init__(self):
        if (self.experiment is None) != (self.untested is not None and not self.tests):
            raise ValueError(f"claim {self.id}: give an experiment and tests, or the reason "
                             "it is untested")

    @property
    def run_key(self) -> str | None:
        """Name of the run this claim needs (``experiment`` or ``experiment-tag``)."""
        if self.experiment is None:
            return None
        return f"{self.experiment}-{self.run_tag}" if self.run_tag else self.experiment

    def make_config(self, preset: str):
        """The experiment config this claim's run uses under ``preset``."""
        from jaxopt_lab import experiments

        module = experiments.get(self.experiment)
        if self.config is not None:
            return self.config(preset, module)
        return module.Config.quick() if preset == "quick" else module.Config.full()


class Part(NamedTuple):
    """The outcome of one :class:`Test`."""

    label: str
    estimate: float
    interval: tuple[float, float]
    n: int
    rule: str
    published: str | None
    verdict: str
    detail: str


class Verdict(NamedTuple):
    """A claim's line of the ledger.

    ``estimate``/``interval`` are those of the claim's first test that ran (the headline
    statistic); ``parts`` holds every test.
    """

    claim_id: str
    estimate: float
    interval: tuple[float, float]
    published: str | None
    verdict: str
    reason: str
    run_dir: str | None
    figures: tuple[str, ...]
    statistic: str = ""
    parts: tuple[Part, ...] = ()


def decide(lo: float, hi: float, direction: str, threshold) -> str:
    """The verdict of one interval ``[lo, hi]`` against the claim's side of ``threshold``.

    Returns ``"confirmed"``, ``"refuted"`` or ``"mixed"`` (rules in the module docstring);
    an interval with a NaN end gives ``"untested"``.

    Example:
      >>> decide(0.2, 0.9, "greater", 0.0), decide(-0.1, 0.9, "greater", 0.0)
      ('confirmed', 'mixed')
      >>> decide(0.1, 0.2, "within", (0.05, 0.25)), decide(0.3, 0.4, "within", (0.05, 0.25))
      ('confirmed', 'refuted')
    """
    lo, hi = float(lo), float(hi)
    if math.isnan(lo) or math.isnan(hi):
        return "untested"
    if lo > hi:
        raise ValueError(f"interval must have lo <= hi, got [{lo}, {hi}]")
    if direction == "greater":
        t = float(threshold)
        return "confirmed" if lo > t else ("refuted" if hi <= t else "mixed")
    if direction == "less":
        t = float(threshold)
        return "confirmed" if hi < t else ("refuted" if lo >= t else "mixed")
    if direction == "within":
        a, b = (float(v) for v in threshold)
        if a <= lo and hi <= b:
            return "confirmed"
        return "refuted" if hi < a or lo > b else "mixed"
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def combine(verdicts) -> str:
    """A claim's verdict from its tests' verdicts (untested tests are left out)."""
    ran = [v for v in verdicts if v != "untested"]
    if not ran:
        return "untested"
    if all(v == "confirmed" for v in ran):
        return "confirmed"
    if all(v == "refuted" for v in ran):
        return "refuted"
    return "mixed"


def evaluate(claim: Claim, results, run_dir: str | None = None) -> Verdict:
    """Run every test of ``claim`` on ``results`` (None: untested) and decide."""
    if claim.experiment is None or results is None:
        reason = claim.untested or "its experiment did not run"
        return Verdict(claim.id, math.nan, (math.nan, math.nan), _published(claim), "untested",
                       reason, run_dir, (), claim.statistic, ())
    parts = []
    for t in claim.tests:
        try:
            est = t.statistic(results)
        except MissingData as e:
            parts.append(Part(t.label, math.nan, (math.nan, math.nan), 0, t.rule(), t.published,
                              "untested", f"not measured: {e}"))
            continue
        v = decide(est.lo, est.hi, t.direction, t.threshold)
        detail = est.what if v != "untested" else f"undefined ({est.what})"
        parts.append(Part(t.label, float(est.value), (float(est.lo), float(est.hi)), est.n,
                          t.rule(), t.published, v, detail))
    verdict = combine(p.verdict for p in parts)
    head = next((p for p in parts if p.verdict != "untested"), parts[0] if parts else None)
    lines = [f"{p.label}: {_num(p.estimate)} [{_num(p.interval[0])}, {_num(p.interval[1])}] "
             f"vs {p.rule} -> {p.verdict}" if p.verdict != "untested" else
             f"{p.label}: {p.detail}" for p in parts]
    counts = {v: sum(p.verdict == v for p in parts) for v in VERDICTS}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    reason = f"{len(parts)} test{'s' if len(parts) != 1 else ''} ({summary}): " + "; ".join(lines)
    if claim.note:
        reason += f". Note: {claim.note}"
    return Verdict(claim.id, head.estimate if head else math.nan,
                   head.interval if head else (math.nan, math.nan), _published(claim), verdict,
                   reason, run_dir, _figures(claim, results), claim.statistic, tuple(parts))


def _figures(claim: Claim, results) -> tuple[str, ...]:
    """The run's figures (names without ``.png``) that match the claim's figure names,
    which may hold shell wildcards (``R_split_*``), in the claim's order."""
    import fnmatch

    have = [f[:-4] if f.endswith(".png") else f
            for f in (getattr(results, "meta", None) or {}).get("figures", [])]
    if not have:
        return tuple(claim.figures)
    out: list[str] = []
    for pattern in claim.figures:
        out += [f for f in sorted(have) if fnmatch.fnmatchcase(f, pattern) and f not in out]
    return tuple(out)


def _published(claim: Claim) -> str | None:
    pubs = list(dict.fromkeys(t.published for t in claim.tests if t.published))
    return "; ".join(pubs) if pubs else None


def _num(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3g}"


__all__ = ["DIRECTIONS", "VERDICTS", "Claim", "Part", "Test", "Verdict", "combine", "decide",
           "evaluate"]
