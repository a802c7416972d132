"""The five signs of being stuck (claim C18): ``health.diagnosis`` and ``jaxopt-lab diagnose``.

Each sign is checked on hand-built results whose answer is known in closed form (a constant
loss plateaus exactly when the monitor's window fills; a gradient norm that drops by 1e4 at a
known step; a known set of final losses), where it must fire and where it must stay silent.
The command is run end to end once in text and once with --json (quick preset, fewer seeds
and steps); its saved curves check the replayed plateau statistic against the monitor that
ran inside training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pytest

from jaxopt_lab import cli, compare
from jaxopt_lab.health import diagnosis as dg

T = 200


def _results(loss, grad_norm=None, *, grad_ratio=None, final=None, train=None, val=None,
             overfit=None):
    """A ``compare.Results`` in the diagnosis layout from per-optimizer ``[S, T]`` curves
    and ``[S]`` metrics (dicts keyed by optimizer name)."""
    names = list(loss)
    metrics, curves = {}, {}
    for n in names:
        L = np.asarray(loss[n], np.float32)
        g = np.ones_like(L) if grad_norm is None else np.asarray(grad_norm[n], np.float32)
        c = {"loss": L[None], "grad_norm": g[None]}
        if grad_ratio is not None:
            c["grad_ratio"] = np.asarray(grad_ratio[n], np.float32)[None]
        fl = L[:, -20:].mean(-1) if final is None else np.asarray(final[n], np.float32)
        m = {"final_loss": fl[None], "nonfinite": ~np.isfinite(fl)[None]}
        if train is not None:
            m["train_loss"] = np.asarray(train[n], np.float32)[None]
            m["val_loss"] = np.asarray(val[n], np.float32)[None]
            if overfit is not None:
                m["overfitting_step"] = np.asarray(overfit[n])[None]
        metrics[n], curves[n] = m, c
    return compare.Results(optimizers=names, hparams={n: [{}] for n in names},
                           metrics=metrics, curves=curves)


def _const(v, s=4, t=T):
    return np.full((s, t), v, np.float32)


# ------------------------------------------------------------------------------ plateau


def test_plateau_fires_on_a_flat_loss_when_the_window_fills():
    # constant loss 2.0: EMA = 2.0, relative change exactly 0 from step W (window full) on.
    d = dg.diagnose(_results({"sgd": _const(2.0)}))
    s = d.sign("plateau")
    assert s.fired and s.value == 0.0 and s.threshold == 1e-3 and s.direction == "<"
    assert s.step == dg.DEFAULT_DIAGNOSIS_THRESHOLDS.plateau_window == 50
    assert s.detail["sgd"]["seeds_fired"] == 4
    # the window is a threshold: override it after the run, the step follows
    d10 = dg.diagnose(_results({"sgd": _const(2.0)}), dg.DiagnosisThresholds(plateau_window=10))
    assert d10.sign("plateau").step == 10


def test_plateau_silent_while_the_loss_keeps_falling_and_after_convergence():
    t = np.arange(T)
    falling = np.tile(2.3 * 0.99 ** t, (4, 1))  # 1 - 0.99^50 = 0.39 relative per window
    s = dg.diagnose(_results({"sgd": falling})).sign("plateau")
    assert not s.fired
    # closed form: for L_t = a r^t the EMA (decay d, started at L_0) is
    # a (c r^t + (1 - c) d^t), c = (1 - d) r / (r - d); its smallest relative change over
    # 50 steps is the first one, at t = 50 (later ones tend to 1 - r^50 from below)
    r, d = 0.99, 0.9
    c = (1 - d) * r / (r - d)
    np.testing.assert_allclose(s.value, 1 - (c * r ** 50 + (1 - c) * d ** 50), rtol=1e-4)
    assert s.value < 1 - r ** 50
    # drops to 0.05 within 30 steps, then flat: a plateau, but below half the first loss
    conv = np.tile(np.where(t < 30, 2.3 - (2.25 / 30) * t, 0.05), (4, 1))
    s = dg.diagnose(_results({"sgd": conv})).sign("plateau")
    assert not s.fired and s.step is None and math.isinf(s.value)
    # ...and it does fire once the floor is lowered below the converged level
    s = dg.diagnose(_results({"sgd": conv}),
                    dg.DiagnosisThresholds(plateau_above=0.01)).sign("plateau")
    assert s.fired


# ------------------------------------------------------------------------------ gap


def test_gap_fires_when_validation_loss_is_far_above_training_loss():
    r = _results({"adam": _const(0.1)}, train={"adam": [0.05, 0.04, 0.06, 0.05]},
                 val={"adam": [0.60, 0.65, 0.55, 0.70]}, overfit={"adam": [40, 60, -1, 50]})
    s = dg.diagnose(r).sign("train_val_gap")
    assert s.fired and s.direction == ">" and s.threshold == 0.1
    np.testing.assert_allclose(s.value, np.median([0.55, 0.61, 0.49, 0.65]), rtol=1e-5)
    assert s.step == 50  # median of the monitor's overfitting steps that fired (40, 50, 60)
    assert s.detail["adam"]["monitor_overfitting_seeds"] == 3
    # the same run under a threshold above the gap: silent
    assert not dg.diagnose(r, dg.DiagnosisThresholds(gap=1.0)).sign("train_val_gap").fired


def test_gap_silent_when_train_and_validation_agree_and_absent_without_val():
    r = _results({"adam": _const(0.1)}, train={"adam": [0.10, 0.12, 0.11, 0.10]},
                 val={"adam": [0.12, 0.13, 0.12, 0.11]})
    s = dg.diagnose(r).sign("train_val_gap")
    assert not s.fired and s.step is None and 0 < s.value < 0.1
    s = dg.diagnose(_results({"adam": _const(0.1)})).sign("train_val_gap")
    assert not s.fired and math.isnan(s.value) and "not measured" in s.test


# ------------------------------------------------------------------------------ vanishing


def test_vanishing_fires_at_the_known_step_and_stays_silent_on_a_steady_norm():
    t = np.arange(T)
    g = np.tile(np.where(t < 100, 1.0, 1e-4), (4, 1))
    s = dg.diagnose(_results({"sgd": _const(1.0)}, {"sgd": g})).sign("vanishing_gradient")
    # window 20: the trailing mean drops below 1e-2 x initial only when the whole window
    # is past the drop, i.e. at step 100 + 19; the end ratio is exactly 1e-4
    assert s.fired and s.step == 119 and s.direction == "<"
    np.testing.assert_allclose(s.value, 1e-4, rtol=1e-4)
    s = dg.diagnose(_results({"sgd": _const(1.0)}, {"sgd": _const(0.7)})).sign(
        "vanishing_gradient")
    assert not s.fired and s.step is None and s.threshold == 1e-2
    np.testing.assert_allclose(s.value, 1.0, rtol=1e-6)


def test_vanishing_fires_on_the_layer_ratio_alone():
    r = _results({"sgd": _const(1.0)}, {"sgd": _const(1.0)}, grad_ratio={"sgd": _const(1e-5)})
    s = dg.diagnose(r).sign("vanishing_gradient")
    # only the layer test fired: the sign reports the layer ratio, its threshold and step
    assert s.fired and s.step == 0 and s.threshold == 1e-3
    assert s.value == pytest.approx(1e-5, rel=1e-4)
    d = s.detail["sgd"]
    assert d["fired_layer"] and not d["fired_norm"] and d["value"] == pytest.approx(1.0)
    r = _results({"sgd": _const(1.0)}, {"sgd": _const(1.0)}, grad_ratio={"sgd": _const(0.5)})
    assert not dg.diagnose(r).sign("vanishing_gradient").fired


# ------------------------------------------------------------------------------ seeds


def test_seed_sensitivity_fires_on_a_bimodal_spread_and_on_a_nonfinite_seed():
    loss = {"sgd": _const(1.0)}
    s = dg.diagnose(_results(loss, final={"sgd": [0.1, 0.1, 1.0, 1.0]})).sign(
        "seed_sensitivity")
    # numpy linear quantiles: q25 = 0.1, q75 = 1.0, median 0.55 -> 0.9 / 0.55
    assert s.fired and s.value == pytest.approx(0.9 / 0.55, rel=1e-5) and s.step is None
    s = dg.diagnose(_results(loss, final={"sgd": [1.0, 1.01, 0.99, 1.0]})).sign(
        "seed_sensitivity")
    # sorted 0.99, 1, 1, 1.01: q25 = 0.9975, q75 = 1.0025 (linear), median 1 -> 0.005
    assert not s.fired and s.value == pytest.approx(0.005, rel=1e-3)
    s = dg.diagnose(_results(loss, final={"sgd": [1.0, 1.01, np.nan, 1.0]})).sign(
        "seed_sensitivity")
    assert s.fired and s.detail["sgd"]["nonfinite_fraction"] == 0.25


# ------------------------------------------------------------------------------ optimizers


def test_disagreement_needs_a_large_ratio_and_disjoint_intervals():
    rng = np.random.default_rng(0)
    a = 0.1 + 0.005 * rng.standard_normal(16)
    b = 1.0 + 0.05 * rng.standard_normal(16)
    loss = {"sgd": _const(1.0, 16), "adam": _const(1.0, 16)}
    s = dg.diagnose(_results(loss, final={"sgd": b, "adam": a})).sign("optimizer_disagreement")
    assert s.fired and s.value == pytest.approx(np.median(b) / np.median(a), rel=1e-5)
    assert s.detail["sgd vs adam"]["intervals_disjoint"]
    # medians 10% apart: intervals disjoint, ratio below 2 -> silent
    s = dg.diagnose(_results(loss, final={"sgd": a * 1.1, "adam": a})).sign(
        "optimizer_disagreement")
    assert not s.fired and s.value == pytest.approx(1.1, rel=1e-5)
    # medians 5x apart but one optimizer's seeds split between 0.1 and 10: overlapping
    # intervals -> silent
    split = np.array([0.1] * 8 + [10.0] * 8)
    s = dg.diagnose(_results(loss, final={"sgd": split, "adam": np.ones(16)})).sign(
        "optimizer_disagreement")
    assert s.value > 2 and not s.detail["sgd vs adam"]["intervals_disjoint"] and not s.fired


def test_disagreement_not_measured_with_one_optimizer():
    s = dg.diagnose(_results({"sgd": _const(1.0)})).sign("optimizer_disagreement")
    assert not s.fired and math.isnan(s.value) and s.detail == {}


# ------------------------------------------------------------------------------ types, figure


def test_diagnosis_is_typed_json_able_and_names_remedies_by_api():
    d = dg.diagnose(_results({"sgd": _const(2.0), "adam": _const(0.2)}))
    assert isinstance(d, dg.Diagnosis) and [s.name for s in d.signs] == list(dg.SIGN_NAMES)
    assert d.stuck and d.fired == ("plateau", "optimizer_disagreement")  # 2.0 vs 0.2
    assert d.sign("plateau").detail["adam"]["fired"]  # flat at its own first loss
    out = json.loads(json.dumps(d.to_dict()))
    assert [s["name"] for s in out["signs"]] == list(dg.SIGN_NAMES)
    for s in d.signs:
        assert s.remedies and all(isinstance(r, dg.Remedy) and r.api for r in s.remedies)
    apis = " ".join(r.api for s in d.signs for r in s.remedies)
    for api in ("transforms.perturbed_gd", "search.random_restarts", "residual=True",
                "norm=", "optax.clip_by_global_norm", "optax.warmup_cosine_decay_schedule"):
        assert api in apis


def test_bad_input_names_the_argument():
    with pytest.raises(TypeError, match="results"):
        dg.diagnose({"sgd": 1})
    r = _results({"sgd": _const(1.0)})
    del r.curves["sgd"]["grad_norm"]
    with pytest.raises(ValueError, match="grad_norm"):
        dg.diagnose(r)
    with pytest.raises(ValueError, match="S >= 2"):
        dg.diagnose(_results({"sgd": _const(1.0, s=1)}))
    with pytest.raises(TypeError, match="thresholds"):
        dg.diagnose(_results({"sgd": _const(1.0)}), {"gap": 1})
    for field, value in (("gap", 0.0), ("plateau_window", 0), ("disagreement", 1.0),
                         ("plateau_above", 1.5)):
        with pytest.raises(ValueError, match=field):
            dg.DiagnosisThresholds(**{field: value})
    for kw, name in (({"model": "rnn"}, "model"), ({"data": "cifar"}, "data"),
                     ({"optimizers": ("sgd", "nope")}, "optimizer"), ({"num_seeds": 1},
                     "num_seeds"), ({"learning_rates": (0.1, 0.2, 0.3)}, "learning_rates"),
                     ({"model": "cnn", "data": "mnist1d"}, "model")):
        with pytest.raises(ValueError, match=name):
            dg.Config(**kw)


def test_figure_from_results(tmp_path):
    from jaxopt_lab.plot.diagnose import diagnosis_figure

    t = np.arange(T)
    r = _results({"sgd": _const(2.0), "adam": np.tile(2.3 * 0.99 ** t, (4, 1))},
                 {"sgd": np.tile(np.where(t < 100, 1.0, 1e-4), (4, 1)), "adam": _const(1.0)})
    fig = diagnosis_figure(r, path=tmp_path / "d.png")
    assert len(fig.axes) == 3 and (tmp_path / "d.png").stat().st_size > 0
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert "plateau (sgd, step 50)" in labels and "vanishing (sgd, step 119)" in labels
    with pytest.raises(ValueError):
        diagnosis_figure(r, path=tmp_path / "no_extension")


# ------------------------------------------------------------------------------ CLI

# SGD at lr 3e-4 barely moves in 150 steps (plateau; its gradient norm does not vanish);
# Adam at 1e-3 learns: the two disagree.
_CLI = ("diagnose", "--quick", "--model", "mlp", "--data", "digits", "--optimizers",
        "sgd,adam", "--lr", "0.0003,0.001", "--seeds", "4", "--steps", "150")


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_end_to_end_prints_the_five_signs_and_writes_the_run(capsys, tmp_path):
    out_dir = str(tmp_path / "run")
    code, out, err = _run(capsys, *_CLI, "--out", out_dir)
    assert code == 0, err
    table = out.split("\n\n")[0].splitlines()  # header line, table, then a blank line
    rows = {ln.split()[0]: ln.split() for ln in table[1:]}
    for name in dg.SIGN_NAMES:
        row = rows[name]  # sign, fired, evidence, "<"/">", threshold, step, per optimizer
        assert row[1] in ("YES", "no") and row[3] in ("<", ">")
        float(row[2]), float(row[4])
        assert row[5] == "-" or int(row[5]) >= 0
    assert rows["plateau"][1] == "YES" and int(rows["plateau"][5]) >= 50
    assert rows["vanishing_gradient"][1] == "no"
    assert rows["optimizer_disagreement"][1] == "YES"
    assert "remedies the lab offers" in out and "transforms.perturbed_gd" in out
    for f in ("records.csv", "meta.json", "metrics.npz", "curves.npz", "diagnose.png"):
        assert os.path.getsize(os.path.join(out_dir, f)) > 0
    res = compare.load(out_dir)
    assert res.summary["diagnosis"]["fired"] == ["plateau", "optimizer_disagreement"]
    again = dg.diagnose(res)  # from the saved run: the same verdicts
    assert again.fired == ("plateau", "optimizer_disagreement")
    # the plateau statistic replayed from the saved loss curves is the monitor's own,
    # computed inside the training scan (same float32 EMA, up to operation order)
    th = dg.DEFAULT_DIAGNOSIS_THRESHOLDS
    for n in ("sgd", "adam"):
        change, _ = dg.plateau_change(res.curves[n]["loss"][0], th)
        np.testing.assert_allclose(change, res.curves[n]["plateau_change"][0], rtol=1e-5,
                                   atol=1e-6, equal_nan=True)  # float32 EMA, fused ops
        # ...and the monitor's first plateau step (floor 0) is the replay's first step
        hit = np.abs(change) < th.plateau_eps
        first = np.where(hit.any(-1), hit.argmax(-1), -1)
        np.testing.assert_array_equal(first, res.metrics[n]["plateau_step"][0])


def test_cli_json_parses(capsys):
    code, out, err = _run(capsys, *_CLI, "--json", "--threshold", "disagreement=1000")
    assert code == 0, err
    doc = json.loads(out)
    signs = {s["name"]: s for s in doc["diagnosis"]["signs"]}
    assert list(signs) == list(dg.SIGN_NAMES)
    for s in signs.values():
        assert {"fired", "value", "threshold", "step", "detail", "remedies"} <= set(s)
    assert signs["optimizer_disagreement"]["threshold"] == 1000.0
    assert not signs["optimizer_disagreement"]["fired"]  # the overridden threshold holds
    assert signs["plateau"]["fired"] and doc["run_dir"] is None


@pytest.mark.parametrize("argv, flag", [
    (("--model", "rnn"), "--model"),
    (("--data", "cifar"), "--data"),
    (("--optimizers", "sgd,nope"), "--optimizers"),
    (("--seeds", "1"), "--seeds"),
    (("--steps", "1"), "--steps"),
    (("--lr", "0.1,0.2,0.3"), "--lr"),
    (("--threshold", "nope=1"), "--threshold"),
    (("--threshold", "gap=0"), "--threshold gap"),
    (("--threshold", "gap"), "--threshold"),
    (("--model", "cnn", "--data", "mnist1d"), "--model"),
    (("--hidden", "16,0"), "--hidden"),
    (("--activation", "swish"), "--activation"),
    (("--batch-size", "0"), "--batch-size"),
])
def test_cli_bad_flags_name_the_flag_before_compiling(capsys, monkeypatch, argv, flag):
    def no_training(*a, **k):
        raise AssertionError("compare.train was called")

    monkeypatch.setattr(compare, "train", no_training)
    code, out, err = _run(capsys, "diagnose", "--quick", *argv)
    assert code == 2 and err.startswith("jaxopt-lab: error: ")
    assert flag in err and "Traceback" not in err


def test_cli_out_must_be_a_directory(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "train", lambda *a, **k: pytest.fail("trained"))
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = _run(capsys, "diagnose", "--quick", "--out", str(f))
    assert code == 2 and "--out" in err


def test_threshold_names_are_the_dataclass_fields_and_listed_in_help(capsys):
    names = {f.name for f in dataclasses.fields(dg.DiagnosisThresholds)}
    assert set(dg.THRESHOLD_NAMES) == names
    code, out, _ = _run(capsys, "diagnose", "--help")
    assert code == 0
    for n in names - {"seed"}:  # the bootstrap seed is settable but not advertised
        assert n in " ".join(out.split())
