"""claims: the ledger of every teaching claim the lab is built around.

Each :class:`Claim` (``C1`` ... ``C26``, from ``../shared/CLAIMS.md``) names its source by
title, the experiment and preset that test it, and one or more :class:`Test` s: a
statistic that is a pure function of the experiment's
:class:`~jaxopt_lab.compare.Results` and returns an estimate with a 95% interval over
seeds (Wilson, Newcombe or bootstrap; :mod:`jaxopt_lab.claims.measure`), its direction
and, where the source gives one, the published value. The verdict (``confirmed`` /
``refuted`` / ``mixed`` / ``untested``) is read from the intervals only
(:func:`decide`). This package runs nothing itself: :func:`verify` asks the experiments
for their runs (reusing finished run directories) and :mod:`jaxopt_lab.claims.report`
writes the HTML page.

Example:
  >>> from jaxopt_lab import claims
  >>> claims.get("C10").experiment
  'explosion'
  >>> claims.decide(0.1, 0.3, "greater", 0.0)
  'confirmed'
  >>> ledger = claims.verify(["C10"], preset="quick")  # doctest: +SKIP
"""

from jaxopt_lab.claims.core import (
    DIRECTIONS,
    VERDICTS,
    Claim,
    Part,
    Test,
    Verdict,
    combine,
    decide,
    evaluate,
)
from jaxopt_lab.claims.ledger import (
    PRESETS,
    Ledger,
    Run,
    RunOutcome,
    counts,
    default_root,
    get,
    ids,
    plan,
    select,
    verify,
)
from jaxopt_lab.claims.measure import Estimate, MissingData
from jaxopt_lab.claims.registry import CLAIMS

__all__ = ["CLAIMS", "DIRECTIONS", "PRESETS", "VERDICTS", "Claim", "Estimate", "Ledger",
           "MissingData", "Part", "Run", "RunOutcome", "Test", "Verdict", "combine", "counts",
           "decide", "default_root", "evaluate", "get", "ids", "plan", "select", "verify"]
