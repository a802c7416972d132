"""The GAN experiments' quick presets end to end (run directory through compare.store)."""

import numpy as np

from jaxopt_lab import compare, experiments


def test_dirac_gan_quick(tmp_path):
    exp = experiments.get("dirac_gan")
    res = exp.run(exp.Config.quick(), out_dir=tmp_path)
    rows = {(r["optimizer"], r["remedy"]): r for r in res.summary["rows"]}
    assert rows[("sgd", "simultaneous")]["converged_rate"] == 0.0
    assert rows[("sgd", "r1")]["converged_rate"] == 1.0
    back = compare.load(tmp_path)
    assert back.hparams == res.hparams
    assert (tmp_path / "trajectories.png").exists()


def test_gan_mixtures_quick(tmp_path):
    exp = experiments.get("gan_mixtures")
    c = exp.Config.quick()
    res = exp.run(c, out_dir=tmp_path)
    m = res.metrics["adam"]
    assert m["modes"].shape == (2, c.num_seeds)
    assert np.all((m["modes"] >= 0) & (m["modes"] <= 8))
    assert res.curves["adam"]["modes"].shape == (2, c.num_seeds, c.steps // c.eval_every)
    recs = compare.read_csv(tmp_path / "records.csv")
    assert {"optimizer", "remedy", "learning_rate", "seed", "modes", "hq_fraction",
            "reverse_kl"} <= set(recs[0])
    assert (tmp_path / "samples.png").exists()
    assert (tmp_path / "modes_over_training.png").exists()
    _check_collapse_step(c, res)
    # every remedy's chunks were saved as they finished: a second call resumes them all
    assert res.meta["resumed_chunks"] == 0
    again = exp.run(c, out_dir=tmp_path)
    assert again.meta["resumed_chunks"] == len(c.remedies) * len(c.optimizers)
    for k in ("modes", "hq_fraction", "reverse_kl", "collapse_step"):
        np.testing.assert_array_equal(again.metrics["adam"][k], m[k])


def _check_collapse_step(c, res):
    steps = c.eval_every * np.arange(1, c.steps // c.eval_every + 1)
    m, cur = res.metrics["adam"], res.curves["adam"]
    # the flag is the health hook's: raised exactly when a mode is missing
    np.testing.assert_array_equal(cur["collapsed"] > 0.5, cur["modes"] < 8)
    for h in range(m["modes"].shape[0]):
        for s in range(c.num_seeds):
            flags = cur["collapsed"][h, s] > 0.5
            want = np.inf
            for t in range(len(steps) - 1, -1, -1):  # serial oracle: walk back the streak
                if not flags[t]:
                    break
                want = steps[t]
            assert m["collapse_step"][h, s] == want
    assert all(0.0 <= r["collapsed_rate"] <= 1.0 for r in res.summary["rows"])
