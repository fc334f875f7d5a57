"""Population-based training's selection rules (snakesweep/pbt.py, issue 19): exploit, explore, lineage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snakesweep import pbt
from snakesweep.config import ChoiceDim, IntDim, LogUniformDim, UniformDim

LR = LogUniformDim.model_validate({"loguniform": [1e-4, 1e-1]})
DROPOUT = UniformDim.model_validate({"uniform": [0.0, 0.5]})
HIDDEN = IntDim.model_validate({"int": [1, 64]})
OPT = ChoiceDim.model_validate({"choice": ["sgd", "adam", "rmsprop"]})
SPACE = {"lr": LR, "dropout": DROPOUT, "hidden": HIDDEN, "optimizer": OPT}

KEEP = (0.9, 0.0, 0.0)  # draws: no resample, first factor (0.8) / lower neighbour
UP = (0.9, 0.0, 0.99)  # no resample, last factor (1.2) / upper neighbour


def population(n: int, seed: int = 0) -> dict[int, dict]:
    return pbt.initial_population(SPACE, n, seed)


# ---------------------------------------------------------------------------- quantile rounding


def test_quantile_count_floors_with_at_least_one():
    assert [pbt.quantile_count(n, 0.25) for n in range(0, 13)] == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert pbt.quantile_count(10, 0.5) == 5 and pbt.quantile_count(3, 0.5) == 1
    assert pbt.quantile_count(100, 0.29) == 29  # 0.29 * 100 = 28.999999999999996 in floating point
    assert pbt.quantile_count(10, 0.3) == 3 and pbt.quantile_count(7, 0.3) == 2
    for q in (0, 0.51, -0.1, True):
        with pytest.raises(ValueError, match="quantile"):
            pbt.quantile_count(10, q)


@pytest.mark.parametrize(("n", "q", "k"), [(2, 0.25, 1), (4, 0.25, 1), (8, 0.25, 2), (10, 0.2, 2), (9, 0.5, 4)])
def test_the_bottom_quantile_copies_the_top_one(n, q, k):
    pop = population(n)
    scores = {m: float(m) for m in pop}  # member m scores m: top = the highest ids under max
    out = pbt.next_generation(SPACE, pop, scores, 1, seed=0, direction="max", quantile=q)
    top = set(range(n - k, n))
    bottom = set(range(k))
    assert {x.member for x in out if x.outcome == "exploited"} == bottom
    assert all(x.continued_from in top for x in out if x.outcome == "exploited")
    for x in out:
        if x.outcome == "kept":
            assert x.continued_from == x.member and x.params == pop[x.member] and x.explore == {}
    # min: the same scores, the other end
    out = pbt.next_generation(SPACE, pop, scores, 1, seed=0, direction="min", quantile=q)
    assert {x.member for x in out if x.outcome == "exploited"} == top
    assert all(x.continued_from in bottom for x in out if x.outcome == "exploited")


def test_a_population_of_one_never_exploits():
    pop = population(1)
    (only,) = pbt.next_generation(SPACE, pop, {0: 0.5}, 1, seed=0, direction="max")
    assert only.outcome == "kept" and only.continued_from == 0


# ---------------------------------------------------------------------------- failures and ties


def test_failed_members_count_as_bottom_and_fill_its_slots():
    pop = population(8)  # k = 2
    scores = {0: 0.9, 1: 0.8, 2: 0.7, 3: 0.6, 4: 0.5, 5: 0.4, 6: math.nan}  # 7 missing, 6 NaN
    out = {x.member: x for x in pbt.next_generation(SPACE, pop, scores, 1, seed=3, direction="max")}
    assert {m for m, x in out.items() if x.outcome == "exploited"} == {6, 7}  # 5, the worst finite, continues
    assert {out[6].continued_from, out[7].continued_from} <= {0, 1}
    assert out[6].score is None and out[7].score is None and out[5].outcome == "kept"
    # more failures than the quantile: every failed member is replaced, donors stay the finite top
    scores = {0: 0.9, 1: 0.8, 2: 0.7}
    out = {x.member: x for x in pbt.next_generation(SPACE, pop, scores, 1, seed=3, direction="max")}
    assert {m for m, x in out.items() if x.outcome == "exploited"} == {3, 4, 5, 6, 7}
    assert {x.continued_from for x in out.values() if x.outcome == "exploited"} <= {0, 1}
    assert [out[m].outcome for m in (0, 1, 2)] == ["kept"] * 3


def test_a_failure_is_never_a_donor_even_with_too_few_finite_scores():
    pop = population(8)  # k = 2, one finite score
    out = pbt.next_generation(SPACE, pop, {4: 0.1}, 1, seed=0, direction="min")
    assert [x.member for x in out if x.outcome == "kept"] == [4]
    assert all(x.continued_from == 4 for x in out if x.outcome == "exploited")


def test_everyone_failed_leaves_dead_members_without_a_next_trial():
    pop = population(4)
    out = pbt.next_generation(SPACE, pop, {}, 2, seed=0, direction="max")
    assert [x.outcome for x in out] == ["dead"] * 4
    assert all(x.params is None and x.continued_from is None for x in out)
    assert out[0].lineage()["continued_from"] is None


def test_ties_are_broken_by_member_id():
    pop = population(4)  # k = 1
    out = pbt.next_generation(SPACE, pop, dict.fromkeys(pop, 1.0), 1, seed=0, direction="max")
    # ranking 0, 1, 2, 3: member 0 is the top, member 3 the bottom
    assert [(x.member, x.outcome, x.continued_from) for x in out] == [(0, "kept", 0), (1, "kept", 1), (2, "kept", 2),
                                                                      (3, "exploited", 0)]
    assert [x.rank for x in out] == [0, 1, 2, 3]


# ---------------------------------------------------------------------------- explore


def test_continuous_values_are_scaled_and_clipped_to_bounds():
    assert pbt.perturb(DROPOUT, 0.25, KEEP) == (0.2, "x0.8")
    assert pbt.perturb(DROPOUT, 0.25, UP) == (0.3, "x1.2")
    assert pbt.perturb(DROPOUT, 0.45, UP) == (0.5, "x1.2")  # 0.54 clipped to the upper bound
    assert pbt.perturb(DROPOUT, 0.0, KEEP) == (0.0, "x0.8")
    assert pbt.perturb(LR, 0.09, UP) == (0.1, "x1.2")
    assert pbt.perturb(LR, 1.1e-4, KEEP) == (1e-4, "x0.8")  # clipped at the lower bound: still > 0
    assert pbt.perturb(LR, 0.001234567, KEEP) == (0.000987654, "x0.8")  # 6 significant digits
    factors = (0.5, 1.0, 2.0)
    assert pbt.perturb(LR, 0.01, (0.9, 0.0, 0.5), factors) == (0.01, "x1")
    assert pbt.perturb(LR, 0.01, (0.9, 0.0, 0.99), factors) == (0.02, "x2")


def test_int_values_are_rounded_clipped_and_never_stuck():
    assert pbt.perturb(HIDDEN, 10, KEEP) == (8, "x0.8")
    assert pbt.perturb(HIDDEN, 10, UP) == (12, "x1.2")
    assert pbt.perturb(HIDDEN, 2, UP) == (3, "x1.2")  # 2.4 rounds back to 2: one step up
    assert pbt.perturb(HIDDEN, 2, KEEP) == (1, "x0.8")
    assert pbt.perturb(HIDDEN, 1, KEEP) == (1, "x0.8")  # one step down, clipped at the bound
    assert pbt.perturb(HIDDEN, 60, UP) == (64, "x1.2")  # 72 clipped
    value, _ = pbt.perturb(HIDDEN, 13, UP)
    assert type(value) is int and value == 16  # 15.6 rounds half up
    log_int = IntDim.model_validate({"int": [1, 1024], "log": True})
    assert pbt.perturb(log_int, 1, KEEP) == (1, "x0.8")


def test_a_choice_moves_to_a_neighbour_and_at_the_ends_to_the_only_one():
    assert pbt.perturb(OPT, "adam", KEEP) == ("sgd", "neighbour")
    assert pbt.perturb(OPT, "adam", UP) == ("rmsprop", "neighbour")
    for draws in (KEEP, UP):
        assert pbt.perturb(OPT, "sgd", draws) == ("adam", "neighbour")  # first: only the upper one
        assert pbt.perturb(OPT, "rmsprop", draws) == ("adam", "neighbour")  # last: only the lower one
    single = ChoiceDim.model_validate({"choice": [7]})
    assert pbt.perturb(single, 7, UP) == (7, "neighbour")
    typed = ChoiceDim.model_validate({"choice": [1, True, "1"]})  # 1 and True are different choices
    assert pbt.perturb(typed, True, KEEP) == (1, "neighbour")
    assert pbt.perturb(typed, True, UP) == ("1", "neighbour")


def test_resampling_with_the_probability_or_off_the_space():
    assert pbt.perturb(DROPOUT, 0.25, (0.1, 0.5, 0.0)) == (0.25, "resample")  # from_unit(0.5)
    assert pbt.perturb(OPT, "sgd", (0.1, 0.99, 0.0)) == ("rmsprop", "resample")
    assert pbt.perturb(HIDDEN, 10, (0.1, 0.0, 0.0)) == (1, "resample")
    assert pbt.perturb(OPT, "sgd", (0.1, 0.0, 0.0), resample_probability=0.0) == ("adam", "neighbour")
    assert pbt.perturb(DROPOUT, 0.25, (0.99, 0.0, 0.0), resample_probability=1.0)[1] == "resample"
    # a value the space no longer holds (the space was edited) is resampled, not scaled
    assert pbt.perturb(DROPOUT, 0.9, KEEP) == (0.0, "resample")
    assert pbt.perturb(OPT, "adagrad", UP)[1] == "resample"


def test_explore_perturbs_space_dims_and_copies_the_rest():
    rng = np.random.default_rng(0)
    params = {"lr": 0.01, "dropout": 0.2, "hidden": 16, "optimizer": "adam", "layers": 3}
    new, changes = pbt.explore(SPACE, params, rng)
    assert new["layers"] == 3 and set(changes) == set(SPACE)
    assert all(changes[k]["from"] == params[k] and changes[k]["to"] == new[k] for k in SPACE)
    assert LR.loguniform[0] <= new["lr"] <= LR.loguniform[1]
    # resample_probability 0: every dimension moves by a factor or to a neighbour
    for seed in range(20):
        new, changes = pbt.explore(SPACE, params, np.random.default_rng(seed), resample_probability=0.0)
        assert {c["how"] for c in changes.values()} <= {"x0.8", "x1.2", "neighbour"}
        assert new["lr"] in (0.008, 0.012) and new["dropout"] in (0.16, 0.24) and new["hidden"] in (13, 19)
        assert new["optimizer"] in ("sgd", "rmsprop")


def test_every_explored_value_stays_in_the_space():
    pop = population(16, seed=5)
    gen = pop
    for g in range(1, 30):
        scores = {m: (p["lr"] * (1 + p["dropout"]) if m % 5 else None) for m, p in gen.items()}
        out = pbt.next_generation(SPACE, gen, scores, g, seed=5, direction="max", quantile=0.5)
        for x in out:
            assert x.params is not None
            assert LR.loguniform[0] <= x.params["lr"] <= LR.loguniform[1] and x.params["lr"] > 0
            assert 0.0 <= x.params["dropout"] <= 0.5
            assert type(x.params["hidden"]) is int and 1 <= x.params["hidden"] <= 64
            assert x.params["optimizer"] in OPT.choice
        gen = {x.member: x.params for x in out}


# ---------------------------------------------------------------------------- determinism and lineage


def test_the_same_inputs_give_the_same_generation_and_the_seed_changes_it():
    pop = population(12)
    scores = {m: 0.1 * ((m * 7) % 12) for m in pop}
    a = pbt.next_generation(SPACE, pop, scores, 3, seed=1, direction="max")
    assert a == pbt.next_generation(SPACE, dict(reversed(list(pop.items()))), dict(scores), 3, seed=1, direction="max")
    # another seed, another generation number: other donors or other perturbations, same members
    for other in (pbt.next_generation(SPACE, pop, scores, 3, seed=2, direction="max"),
                  pbt.next_generation(SPACE, pop, scores, 4, seed=1, direction="max")):
        assert [x.outcome for x in other] == [x.outcome for x in a]
        assert [(x.continued_from, x.params) for x in other] != [(x.continued_from, x.params) for x in a]
    assert population(6, seed=3) == population(6, seed=3) != population(6, seed=4)


def test_initial_population_has_distinct_members_and_says_when_the_space_is_small():
    pop = population(10)
    assert sorted(pop) == list(range(10))
    assert len({tuple(sorted(p.items())) for p in pop.values()}) == 10
    small = {"optimizer": OPT}
    assert sorted(pbt.initial_population(small, 5, 0).values(), key=str) == sorted(
        [{"optimizer": c} for c in OPT.choice], key=str)
    with pytest.raises(ValueError):
        pbt.initial_population(SPACE, 0, 0)


def test_bad_settings_are_refused():
    pop = population(4)
    with pytest.raises(ValueError, match="generation 0"):
        pbt.next_generation(SPACE, pop, {}, 0, seed=0, direction="max")
    with pytest.raises(ValueError, match="factors"):
        pbt.next_generation(SPACE, pop, {}, 1, seed=0, direction="max", factors=())
    with pytest.raises(ValueError, match="factors"):
        pbt.next_generation(SPACE, pop, {}, 1, seed=0, direction="max", factors=(0.8, -1.0))
    with pytest.raises(ValueError, match="resample"):
        pbt.next_generation(SPACE, pop, {}, 1, seed=0, direction="max", resample_probability=1.5)
    with pytest.raises(ValueError, match="direction"):
        pbt.next_generation(SPACE, pop, {}, 1, seed=0, direction="up")


def test_generation_budget_is_the_running_total():
    assert [pbt.generation_budget(g, 3) for g in range(4)] == [3, 6, 9, 12]
    assert type(pbt.generation_budget(2, 3.0)) is int
    assert pbt.generation_budget(2, 0.1) == 0.3
    with pytest.raises(ValueError):
        pbt.generation_budget(-1, 3)


def test_lineage_records_and_the_best_members_schedule():
    pop = population(4)  # k = 1
    gens = [{m: {"member": m, "generation": 0, "continued_from": None, "params": p} for m, p in pop.items()}]
    current = pop
    for g in (1, 2, 3):
        scores = {m: float(m) for m in current}  # member 3 is the best, member 0 copies it each time
        out = pbt.next_generation(SPACE, current, scores, g, seed=0, direction="max")
        gens.append({x.member: x.lineage() for x in out})
        current = {x.member: x.params for x in out}
    rec = gens[2][0]
    assert rec["outcome"] == "exploited" and rec["continued_from"] == {"member": 3, "generation": 1}
    assert rec["score"] == 0.0 and rec["rank"] == 3 and set(rec["explore"]) == set(SPACE)
    assert gens[2][3]["continued_from"] == {"member": 3, "generation": 1} and gens[2][3]["outcome"] == "kept"
    # member 0's last checkpoint: trained by member 3 in generations 0..2, then by member 0
    chain = pbt.ancestry(gens, 0)
    assert [(c["generation"], c["member"]) for c in chain] == [(0, 3), (1, 3), (2, 3), (3, 0)]
    assert [c["params"] for c in chain] == [pop[3], pop[3], pop[3], gens[3][0]["params"]]
    assert [(c["generation"], c["member"]) for c in pbt.ancestry(gens, 3)] == [(0, 3), (1, 3), (2, 3), (3, 3)]
