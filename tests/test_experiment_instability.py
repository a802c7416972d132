"""instability experiment: the quick preset shows the expected contrast."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import compare, experiments
from jaxopt_lab.experiments import instability as ins
from jaxopt_lab.transforms import weight_ema


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("instability")
    return ins.run(ins.Config.quick(), out_dir=out), out


def test_contrast_constant_vs_warmup_cosine_vs_ema(quick_run):
    # measured on 64 seeds at peak 1.2 (warmup 50): constant flags 64/64 and is still
    # oscillating over > half the last window on 64/64 (final loss median 30.6); warmup +
    # cosine catapults once near the warmup peak (flag fires on 64/64 there) but is
    # oscillating late on 0/64 and ends at loss median 0.43; EMA of the constant run:
    # 4.3. Asserted with margins over the quick preset's 32 seeds:
    res, out = quick_run
    assert isinstance(res, compare.Results)
    s = res.summary
    c, w = s["constant"], s["warmup_cosine"]
    # the constant peak rate oscillates by far more than warmup + cosine at the end
    assert c["oscillation"]["ci"][0] > 20 * w["oscillation"]["ci"][1]
    # ...ends far worse, and its oscillation flag fires on every seed
    assert c["final_loss"]["ci"][0] > 10 * w["final_loss"]["ci"][1]
    assert c["oscillation_flagged"]["ci"][0] > 0.85
    # the monitor still calls the constant run oscillating at the end on (nearly) every
    # seed, and the decayed run on none (its transient catapult near the warmup peak is
    # real and reported in median_first_oscillation_step)
    assert c["oscillating_late"]["ci"][0] > 0.85
    assert w["oscillating_late"]["rate"] == 0.0
    assert 0 < w["median_first_oscillation_step"] < 2 * ins.Config.quick().warmup_steps
    # (lower bound 0.22 vs upper 0.11 on a 2-core AMD EPYC; a 3x margin failed there)
    assert w["test_accuracy"]["ci"][0] > 1.5 * c["test_accuracy"]["ci"][1]
    # averaging the oscillating iterates helps the constant schedule a lot...
    assert c["final_loss_ema"]["ci"][1] < 0.5 * c["final_loss"]["ci"][0]
    # ...and changes the decayed schedule little
    assert w["final_loss_ema"]["median"] < 2 * w["final_loss"]["median"]
    # SWA (the equal average of the second half's iterates) is reported beside them
    for v in ins.SCHEDULES:
        m = res.metrics[v]
        assert m["final_loss_swa"].shape == m["final_loss"].shape
        assert np.all((m["test_accuracy_swa"] >= 0) & (m["test_accuracy_swa"] <= 1))
    for v in ins.SCHEDULES:
        assert s["nonfinite_seeds"][v] == np.nonzero(res.metrics[v]["nonfinite"][0])[0].tolist()
    for name in ("records.csv", "meta.json", "loss_curves.png"):
        assert (out / name).stat().st_size > 0
    assert len(compare.read_csv(out)) == 2 * ins.Config.quick().num_seeds


def test_weight_ema_matches_closed_form():
    opt = optax.chain(optax.sgd(0.5), weight_ema(0.5))
    p = jnp.array([4.0])
    state = opt.init(p)
    seen = []
    for _ in range(3):
        seen.append(float(p[0]))
        u, state = opt.update(p, state, p)  # gradient of 0.5 p^2 is p
        p = optax.apply_updates(p, u)
    # EMA started at the initial weights, fed the iterates before each step: 4, 2, 1
    ema = 4.0
    for x in seen:
        ema = 0.5 * ema + 0.5 * x
    assert seen == [4.0, 2.0, 1.0]
    np.testing.assert_allclose(float(state[1].ema[0]), ema, rtol=1e-6)
    with pytest.raises(ValueError, match="decay"):
        weight_ema(1.0)
    with pytest.raises(ValueError, match="params"):
        weight_ema(0.9).update(p, weight_ema(0.9).init(p), None)


def test_registered_and_bad_config():
    assert experiments.get("instability") is ins
    with pytest.raises(ValueError, match="warmup_steps"):
        ins.Config(warmup_steps=400, steps=400)
    with pytest.raises(ValueError, match="peak_learning_rate"):
        ins.Config(peak_learning_rate=-1.0)
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="swa_start"):
            ins.Config(swa_start=bad)
