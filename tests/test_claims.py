"""The claims ledger: verdict rule at its boundaries, statistics against closed forms,
the registry, resuming from finished run directories, the CLI's bad input, and the HTML
report (escaping, embedded figures, links), checked in headless chromium when present.

Run directories here are tiny ``Results`` written with ``Results.save`` under the
experiments' own quick configs (so the ledger's config-hash check accepts them): no
experiment is trained in this file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from jaxopt_lab import claims
from jaxopt_lab.claims import ledger as ledger_mod
from jaxopt_lab.claims import measure
from jaxopt_lab.claims import report as report_mod
from jaxopt_lab.claims.core import Claim
from jaxopt_lab.claims.core import Test as ClaimTest
from jaxopt_lab.cli import main
from jaxopt_lab.compare import Results
from jaxopt_lab.compare.stats import wilson_interval
from jaxopt_lab.compare.store import make_meta

SOURCES = {
    "From Local Optima to Complete Collapse: When Optimization Turns into Catastrophe",
    "Local Minima in Deep Learning: Why Your ANN is Stuck (and How to Fix It!)",
    "Definitive Guide to Navigating Local Minima and Saddle Points in Deep Learning",
    "The AI Local Optima Trap: Why Smart Algorithms Sometimes Fall into Short-Sightedness",
    "Effects of Optimizer Choice on Mode Collapse in GANs",
}


# --------------------------------------------------------------------------- verdict rule


@pytest.mark.parametrize("lo, hi, direction, threshold, want", [
    (0.001, 1.0, "greater", 0.0, "confirmed"),
    (0.0, 1.0, "greater", 0.0, "mixed"),  # lo == threshold: not above it
    (-1.0, 0.0, "greater", 0.0, "refuted"),  # hi == threshold: at or below
    (-1.0, 1e-9, "greater", 0.0, "mixed"),
    (-1.0, -0.001, "less", 0.0, "confirmed"),
    (-1.0, 0.0, "less", 0.0, "mixed"),
    (0.0, 1.0, "less", 0.0, "refuted"),
    (0.05, 0.25, "within", (0.05, 0.25), "confirmed"),  # the band's own edges
    (0.04, 0.25, "within", (0.05, 0.25), "mixed"),
    (0.0, 0.049, "within", (0.05, 0.25), "refuted"),
    (0.26, 0.3, "within", (0.05, 0.25), "refuted"),
    (0.25, 0.3, "within", (0.05, 0.25), "mixed"),
    (0.3, 0.3, "greater", 0.3, "refuted"),  # a zero-width interval on the threshold
    (float("inf"), float("inf"), "greater", 0.0, "confirmed"),
    (float("nan"), 1.0, "greater", 0.0, "untested"),
])
def test_decide_boundaries(lo, hi, direction, threshold, want):
    assert claims.decide(lo, hi, direction, threshold) == want


def test_decide_bad_input():
    with pytest.raises(ValueError, match="lo <= hi"):
        claims.decide(1.0, 0.0, "greater", 0.0)
    with pytest.raises(ValueError, match="direction"):
        claims.decide(0.0, 1.0, "above", 0.0)
    with pytest.raises(ValueError, match="direction"):
        ClaimTest("x", lambda r: None, "above", 0.0)
    with pytest.raises(ValueError, match="a <= b"):
        ClaimTest("x", lambda r: None, "within", (1.0, 0.0))


def test_combine():
    assert claims.combine(["confirmed", "confirmed"]) == "confirmed"
    assert claims.combine(["refuted", "refuted", "untested"]) == "refuted"
    assert claims.combine(["confirmed", "refuted"]) == "mixed"
    assert claims.combine(["confirmed", "mixed"]) == "mixed"
    assert claims.combine(["untested"]) == "untested"
    assert claims.combine([]) == "untested"


# --------------------------------------------------------------------------- statistics


def _results(groups: dict, hparams: dict | None = None, config=None, figures=()) -> Results:
    labels = list(groups)
    metrics = {g: {k: np.asarray(v)[None] if np.asarray(v).ndim == 1 else np.asarray(v)
                   for k, v in m.items()} for g, m in groups.items()}
    meta = make_meta(config if config is not None else {"seed": 0})
    return Results(labels, hparams or {g: [{}] for g in labels}, metrics, meta=meta,
                   summary={}, group_column="variant")


def test_rate_and_newcombe_against_closed_forms():
    r = _results({"a": {"flag": np.array([True] * 6 + [False] * 4)},
                  "b": {"flag": np.zeros(10, bool)}})
    est = measure.rate(r, "a", "flag")
    assert est.value == pytest.approx(0.6)
    assert (est.lo, est.hi) == pytest.approx(wilson_interval(6, 10))
    # Newcombe (1998), method 10, his example 56/70 vs 48/80: 0.2 [0.0524, 0.3339]
    d, lo, hi = measure.newcombe_difference(56, 70, 48, 80)
    assert (d, lo, hi) == pytest.approx((0.2, 0.0524, 0.3339), abs=5e-4)
    diff = measure.rate_difference(r, ("a", None), ("b", None), "flag")
    assert diff.value == pytest.approx(0.6) and diff.lo > 0  # 6/10 vs 0/10: resolved
    d3 = measure.newcombe_difference(3, 10, 0, 10)
    assert d3[1] < 0 < d3[2]  # 3/10 vs 0/10: not resolved at 10 seeds


def test_paired_difference_uses_pairs_and_inf():
    base = np.arange(20, dtype=float) * 100.0  # huge spread between seeds
    r = _results({"fast": {"step": base}, "slow": {"step": base + 5.0},
                  "never": {"step": np.full(20, np.inf)}})
    est = measure.paired_difference(r, ("fast", None), ("slow", None), "step")
    assert est.value == -5.0 and est.hi < 0  # paired: the seed spread cancels
    both = measure.paired_difference(r, ("never", None), ("never", None), "step")
    assert (both.value, both.lo, both.hi) == (0.0, 0.0, 0.0)  # inf - inf counts as 0
    again = measure.paired_difference(r, ("fast", None), ("slow", None), "step")
    assert again == est  # deterministic


def test_missing_data_makes_a_part_untested():
    r = _results({"a": {"flag": np.ones(8, bool)}})
    claim = Claim("C99", "words", "src", "explosion",
                  tests=(ClaimTest("present", lambda r: measure.rate(r, "a", "flag"),
                                   "greater", 0.5),
                         ClaimTest("absent", lambda r: measure.rate(r, "zzz", "flag"),
                                   "greater", 0.5)))
    v = claims.evaluate(claim, r, "dir")
    assert v.verdict == "confirmed"  # decided by the test that ran
    assert [p.verdict for p in v.parts] == ["confirmed", "untested"]
    assert "no variant 'zzz'" in v.parts[1].detail
    with pytest.raises(measure.MissingData, match="matching runs"):
        measure.values(_results({"a": {"x": np.ones((2, 4))}}, {"a": [{"lr": 1}, {"lr": 2}]}),
                       "a", "x")


def test_figure_names_resolve_with_wildcards():
    claim = Claim("C99", "w", "s", "continual", tests=(ClaimTest(
        "t", lambda r: measure.Estimate(1.0, 1.0, 1.0, 1, "x"), "greater", 0.0),),
        figures=("R_split_*", "memory_split_*", "absent"))
    r = _results({"a": {"x": np.ones(2)}})
    r.meta["figures"] = ["memory_split_digits.png", "R_split_digits_task.png",
                         "R_split_digits_class.png", "other.png"]
    v = claims.evaluate(claim, r)
    assert v.figures == ("R_split_digits_class", "R_split_digits_task", "memory_split_digits")
    assert v.verdict == "confirmed" and v.published is None


# --------------------------------------------------------------------------- registry


def test_registry_covers_every_claim():
    assert claims.ids() == [f"C{i}" for i in range(1, 27)]
    from jaxopt_lab import experiments

    for c in claims.CLAIMS:
        assert c.source in SOURCES, c.id
        if c.experiment is None:
            assert c.untested and not c.tests
        else:
            assert c.experiment in experiments.names() and c.tests and c.statistic
    tested = {c.id for c in claims.CLAIMS if c.experiment}
    # issue 12's list and the failure demonstrations
    assert {"C1", "C2", "C4", "C5", "C6", "C7", "C8", "C10", "C12", "C13", "C14", "C15",
            "C17", "C20", "C22", "C25"} <= tested
    assert claims.get("c10").id == "C10"
    with pytest.raises(ValueError, match="valid claims: C1, C2"):
        claims.get("C99")


def test_plan_runs_each_experiment_config_once(tmp_path):
    runs = claims.plan(claims.select(None), "quick", str(tmp_path))
    keys = [r.key for r in runs]
    assert len(keys) == len(set(keys))
    by_claim = {cid: r for r in runs for cid in r.claims}
    assert by_claim["C10"] is by_claim["C15"]  # one explosion run for both
    assert by_claim["C22"].experiment == "saddle_escape"
    assert by_claim["C2"] is by_claim["C1"]  # one gan_mixtures remedy run
    assert by_claim["C4"] is by_claim["C5"]  # one gan_images run
    assert by_claim["C4"].experiment == "gan_images"


# --------------------------------------------------------------------------- fake runs


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    return fig


def _write_fake_runs(root: str) -> dict:
    """Finished run directories for C10/C15 (explosion) and C17/C20 (local_minima)."""
    from jaxopt_lab.experiments import explosion, local_minima

    n = 16
    runs = {r.experiment: r for r in claims.plan(claims.select(["C10", "C17"]), "quick", root)}
    ex = _results({
        "no_clip": {"nonfinite": np.ones(n, bool), "final_loss": np.full(n, np.nan),
                    "initial_loss": np.full(n, 1.8), "rollback_events": np.zeros(n)},
        "clip": {"nonfinite": np.zeros(n, bool), "final_loss": np.linspace(0.2, 0.4, n),
                 "initial_loss": np.full(n, 1.8), "rollback_events": np.zeros(n)},
        "rollback": {"nonfinite": np.zeros(n, bool), "final_loss": np.full(n, 0.17),
                     "initial_loss": np.full(n, 1.8), "rollback_events": np.ones(n)},
    }, config=explosion.Config.quick())
    ex.save(runs["explosion"].run_dir, {"loss_curves": _figure()})
    x = np.linspace(-0.01, 0.01, n)
    lm = _results({
        "gd@-2": {"success": np.zeros(n, bool), "final_x": -2.3228 + x},
        "momentum@-2": {"success": np.zeros(n, bool), "final_x": -2.3228 + x},
        "gd@2": {"success": np.zeros(n, bool), "final_x": 1.408 + x},
        "momentum@2": {"success": np.ones(n, bool), "final_x": -0.471 + x},
        "restarts": {"success": np.ones(n, bool), "final_x": -0.471 + x},
        "annealing": {"success": np.ones(n, bool), "final_x": -0.471 + x},
    }, config=local_minima.Config.quick())
    lm.save(runs["local_minima"].run_dir, {"outcomes": _figure()})
    return runs


def test_verify_reuses_finished_runs_and_decides(tmp_path):
    root = str(tmp_path / "runs")
    runs = _write_fake_runs(root)
    assert all(ledger_mod.finished(r) for r in runs.values())
    ledger = claims.verify(["C10", "C15", "C17", "C20", "C21"], root=root)
    assert all(o.reused for o in ledger.runs) and len(ledger.runs) == 2
    v = {x.claim_id: x for x in ledger.verdicts}
    assert v["C10"].verdict == "confirmed" and v["C15"].verdict == "confirmed"
    assert v["C10"].interval[1] < 0 and v["C10"].run_dir == runs["explosion"].run_dir
    assert v["C10"].figures == ("loss_curves",)  # resolved against the run's own figures
    # GD stops in the local minimum at -2.32, not near -1 where the source puts it
    assert v["C17"].verdict == "mixed"
    assert [p.verdict for p in v["C17"].parts] == ["confirmed", "refuted", "confirmed"]
    assert "genetic" in v["C20"].parts[2].label and v["C20"].parts[2].verdict == "untested"
    assert v["C21"].verdict == "untested" and "definition" in v["C21"].reason
    assert claims.counts(ledger.verdicts)["untested"] == 1
    # a directory of another config is not a finished run of this one
    other = runs["explosion"]._replace(config_hash="0" * 64)
    assert not ledger_mod.finished(other)


# --------------------------------------------------------------------------- CLI


def test_cli_bad_input(tmp_path, capsys):
    assert main(["verify", "C99"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "valid claims: C1, C2" in err and "C26" in err
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["report", "C10", "--out", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"jaxopt-lab: error: --out must be a directory, {str(f)!r} is a file"
    assert main(["verify", "--out", str(f)]) == 2
    assert "--out must be a directory" in capsys.readouterr().err
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert main(["report", "--out", str(ro / "sub")]) == 2
        assert "--out" in capsys.readouterr().err
    assert main(["verify", "--quick", "--full"]) == 2


def test_cli_verify_and_report_from_finished_runs(tmp_path, capsys):
    root = str(tmp_path / "runs")
    _write_fake_runs(root)
    assert main(["verify", "C10", "C17", "--out", root]) == 0
    out = capsys.readouterr().out
    assert "explosion-" in out and "reused" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("C10 "))
    assert line.rstrip().endswith("confirmed") and "[-1, " in line
    rep = tmp_path / "report"
    assert main(["report", "C10", "C15", "C17", "C20", "C21", "--out", str(rep),
                 "--runs", root]) == 0
    data = json.loads((rep / "report.json").read_text())
    assert [v["claim_id"] for v in data["verdicts"]] == ["C10", "C15", "C17", "C20", "C21"]
    assert data["counts"]["confirmed"] == 2 and all(r["reused"] for r in data["runs"])
    assert data["runs"][0]["versions"]["numpy"] == np.__version__


# --------------------------------------------------------------------------- report


def _report(tmp_path):
    root = str(tmp_path / "runs")
    _write_fake_runs(root)
    ledger = claims.verify(["C10", "C15", "C17", "C20", "C21"], root=root)
    # a hostile published value must come out as text
    bad = ledger.verdicts[0]._replace(published="<img src=x onerror=alert(1)> & \"q\"")
    ledger = ledger._replace(verdicts=(bad, *ledger.verdicts[1:]))
    out = tmp_path / "report"
    html_path, json_path = report_mod.write(ledger, str(out))
    return ledger, html_path, json_path


def test_report_is_self_contained_escaped_and_linked(tmp_path):
    ledger, html_path, json_path = _report(tmp_path)
    page = open(html_path, encoding="utf-8").read()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;" \
        in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    imgs = re.findall(r'<img alt="[^"]*" src="([^"]*)"', page)
    assert len(imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert page.count('class="claim-row"') == len(ledger.verdicts)
    # claim -> figure and figure -> claim
    anchor = next(a for a in re.findall(r'id="(fig-[^"]+)"', page) if "loss_curves" in a)
    assert f'href="#{anchor}"' in page and 'href="#claim-C10"' in page
    for cfg_key in ("clip_norm", "recurrent_scale"):
        assert cfg_key in page  # each run's config
    assert "compile" in page and "Versions" in page and "Device" in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


_CHECK = """<script>window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute('data-images', JSON.stringify(imgs.map(function (i) {
    return i.naturalWidth; })));
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.claim-row'));
  document.body.setAttribute('data-verdicts', JSON.stringify(rows.map(function (r) {
    var c = r.querySelector('td.verdict'); return c ? c.textContent.trim() : ''; })));
});</script>"""


@pytest.mark.skipif(_chromium() is None,
                    reason="chromium is not installed (CI installs Debian's chromium)")
def test_report_in_headless_chromium(tmp_path):
    ledger, html_path, _ = _report(tmp_path)
    browser = _chromium()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--enable-logging=stderr", "--v=0",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    url = "file://" + os.path.abspath(html_path)
    # 1. the report itself: loads with no console message (no error, no failed resource)
    run = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    console = [ln for ln in run.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, console
    assert run.stdout.count('class="claim-row"') == len(ledger.verdicts)
    # 2. a copy with a checking script: every image decodes, every row has a verdict
    probe = os.path.join(os.path.dirname(html_path), "report-check.html")
    page = open(html_path, encoding="utf-8").read()
    with open(probe, "w", encoding="utf-8") as fh:
        fh.write(page.replace("</body>", _CHECK + "</body>"))
    run = subprocess.run([*flags, "--dump-dom", "file://" + probe], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not [ln for ln in run.stderr.splitlines() if ":CONSOLE" in ln]
    widths = json.loads(re.search(r'data-images="([^"]*)"', run.stdout).group(1)
                        .replace("&quot;", '"'))
    assert len(widths) == 2 and all(w > 0 for w in widths)
    verdicts = json.loads(re.search(r'data-verdicts="([^"]*)"', run.stdout).group(1)
                          .replace("&quot;", '"'))
    assert verdicts == [v.verdict for v in ledger.verdicts]
    assert all(v in claims.VERDICTS for v in verdicts)
    # 3. a screenshot next to the report (CI keeps it as an artifact)
    shot = os.path.join(os.path.dirname(html_path), "report.png")
    run = subprocess.run([*flags, "--window-size=1280,2400", f"--screenshot={shot}", url],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and os.path.getsize(shot) > 1000
    with open(shot, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("JAXOPT_LAB_ARTIFACTS")  # CI: keep the page and its screenshot
    if keep:
        os.makedirs(keep, exist_ok=True)
        for path in (html_path, shot):
            shutil.copy(path, os.path.join(keep, "claims-" + os.path.basename(path)))


def test_c23_compares_each_second_order_method_with_gd_at_both_rates():
    """C23's tests read the learning-rate rows they name: second-order methods at step 1
    against GD at 0.1 and at 1.0 (paired seeds, medians)."""
    from jaxopt_lab.claims import core

    n = 32
    lrs = [{"learning_rate": 0.1}, {"learning_rate": 1.0}]
    steps = {"sgd": (40.0, 8.0), "trust_region": (9.0, 2.0), "saddle_free": (60.0, 12.0),
             "hessian_free": (30.0, 8.0)}  # (lr 0.1, lr 1.0) escape step of every seed
    groups = {o: {"escape_step": np.stack([np.full(n, a), np.full(n, b)])}
              for o, (a, b) in steps.items()}
    r = _results(groups, hparams={o: lrs for o in steps})
    v = core.evaluate(claims.get("C23"), r)
    got = {p.label.split(" (step")[0] + (" @0.1" if "lr 0.1" in p.label else " @1"):
           (p.estimate, p.verdict) for p in v.parts}
    assert got["trust region @0.1"] == (-38.0, "confirmed")
    assert got["trust region @1"] == (-6.0, "confirmed")
    assert got["saddle-free Newton @0.1"] == (-28.0, "confirmed")  # its own lr-1 row
    assert got["saddle-free Newton @1"] == (4.0, "refuted")
    assert got["Hessian-free Newton-CG @0.1"] == (-32.0, "confirmed")
    assert got["Hessian-free Newton-CG @1"][0] == 0.0
    assert v.verdict == "mixed"


def test_c26_reads_the_first_and_last_checkpoints():
    """C26: index and loss at the last checkpoint minus the first (paired seeds), and the
    share of seeds with negative curvature at the first."""
    from jaxopt_lab.claims import core

    n = 8
    steps = [{"step": 0}, {"step": 50}, {"step": 300}]
    index = np.stack([np.full(n, 0.4), np.full(n, 0.5), np.full(n, 0.1)])
    loss = np.stack([np.full(n, 2.3), np.full(n, 1.0), np.full(n, 0.2)])
    r = _results({"hessian": {"index_dense": index, "loss": loss}},
                 hparams={"hessian": steps})
    v = core.evaluate(claims.get("C26"), r)
    est = [(round(p.estimate, 6), p.verdict) for p in v.parts]
    assert est == [(-0.3, "confirmed"), (-2.1, "confirmed"), (1.0, "confirmed")]
    assert v.verdict == "confirmed"
    one = _results({"hessian": {"index_dense": index[:1], "loss": loss[:1]}},
                   hparams={"hessian": steps[:1]})
    assert core.evaluate(claims.get("C26"), one).verdict == "untested"  # one checkpoint


def test_c4_c5_read_final_scores_and_the_curves_at_the_named_epochs():
    """C4: mean final score differences at the largest scored sample size (paired seeds);
    C5: label KL curves read at epochs 5, 35, 50 (eval every 5 epochs of 6 steps) and at
    the last evaluation; a run that does not evaluate at those epochs leaves them untested."""
    from jaxopt_lab.claims import core

    n, t = 6, 10
    kl = {"sgd": np.linspace(0.5, 0.3, t), "momentum0.5": np.r_[np.full(7, 0.4), 0.2, 0.1, 0.05],
          "adam": np.linspace(0.2, 0.02, t), "rmsprop": np.r_[0.01, np.full(t - 1, 0.005)]}
    is_ = {"sgd": 3.0, "momentum0.5": 5.0, "adam": 6.0, "rmsprop": 7.0}
    lr = [{"learning_rate": 1e-3}]
    groups = {o: {"inception_score_10000": np.full(n, is_[o]), "inception_score_500": np.zeros(n),
                  "label_kl_10000": np.full(n, kl[o][-1])} for o in kl}
    r = _results(groups, hparams={o: lr for o in kl})
    r.curves = {o: {"label_kl_10000": np.broadcast_to(kl[o], (1, n, t)).copy()} for o in kl}
    r.summary = {"eval_sizes": [500, 10000], "steps_per_epoch": 6,
                 "eval_steps": [30 * (i + 1) for i in range(t)]}
    c4 = core.evaluate(claims.get("C4"), r)
    assert [round(p.estimate, 6) for p in c4.parts] == [4.0, 1.0, 2.0, -0.295]
    assert c4.verdict == "confirmed"
    c5 = core.evaluate(claims.get("C5"), r)
    assert [round(p.estimate, 6) for p in c5.parts] == [0.01, 0.3, -0.35, -0.18]
    assert [p.verdict for p in c5.parts] == ["confirmed"] * 4
    r.summary = {**r.summary, "steps_per_epoch": 30}  # evaluations at epochs 1..10
    parts = core.evaluate(claims.get("C5"), r).parts
    assert [p.verdict for p in parts] == ["confirmed", "confirmed", "untested", "confirmed"]
    assert "not at epoch 50" in parts[2].detail
