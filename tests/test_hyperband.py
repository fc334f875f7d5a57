"""Hyperband's selection rules (snakesweep/hyperband.py, issue 19): brackets, rungs, sampling, promotion."""

from __future__ import annotations

import math

import pytest

from snakesweep import hyperband as hb
from snakesweep.config import Budget, ChoiceDim, IntDim, LogUniformDim, UniformDim
from snakesweep.search import ladder

SPACE = {
    "lr": LogUniformDim.model_validate({"loguniform": [1e-4, 1e-1]}),
    "hidden": IntDim.model_validate({"int": [8, 256], "log": True}),
    "dropout": UniformDim.model_validate({"uniform": [0.0, 0.5]}),
    "optimizer": ChoiceDim.model_validate({"choice": ["sgd", "adam"]}),
}


# ---------------------------------------------------------------------------- bracket arithmetic


def test_brackets_match_the_papers_table_for_81_and_eta_3():
    plan = hb.brackets(1, 81, 3)
    assert hb.s_max(1, 81, 3) == 4 and hb.n_brackets(1, 81, 3) == 5
    assert [b.s for b in plan] == [4, 3, 2, 1, 0]
    assert [b.n for b in plan] == [81, 34, 15, 8, 5]
    assert [b.r for b in plan] == [1, 3, 9, 27, 81]
    # Li et al., Table 1: (n_i, r_i) per rung of each bracket
    table = {
        4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        3: [(34, 3), (11, 9), (3, 27), (1, 81)],
        2: [(15, 9), (5, 27), (1, 81)],
        1: [(8, 27), (2, 81)],
        0: [(5, 81)],
    }
    for b in plan:
        assert [(r.configs, r.budget) for r in b.rungs] == table[b.s]
        assert [r.index for r in b.rungs] == list(range(b.s + 1))
        assert all(type(r.budget) is int for r in b.rungs)  # whole budgets stay ints (epochs)


def test_min_budget_scales_the_ladder_and_every_bracket_ends_at_max():
    plan = hb.brackets(2, 162, 3)  # R = 81 in units of 2
    assert [b.n for b in plan] == [81, 34, 15, 8, 5]
    assert [b.r for b in plan] == [2, 6, 18, 54, 162]
    assert all(b.rungs[-1].budget == 162 for b in plan)
    # a ratio that is no power of eta: s_max = floor(log_3(100)) = 4, budgets top-down from max
    plan = hb.brackets(1, 100, 3)
    assert [r.budget for r in plan[0].rungs] == [1, 4, 11, 33, 100]
    assert all(b.rungs[-1].budget == 100 for b in plan)
    # decimal budgets: 6 significant digits, never below min
    plan = hb.brackets(0.1, 0.9, 3)
    assert hb.s_max(0.1, 0.9, 3) == 2
    assert [r.budget for r in plan[0].rungs] == [0.1, 0.3, 0.9]


@pytest.mark.parametrize(("lo", "hi", "eta"), [(1, 81, 3), (1, 27, 3), (1, 10, 3), (1, 100, 3), (2, 64, 2),
                                               (1, 9, 2), (1, 1000, 4), (3, 100, 3), (1, 30, 5)])
def test_the_most_aggressive_bracket_is_halvings_ladder(lo, hi, eta):
    plan = hb.brackets(lo, hi, eta)
    assert [r.budget for r in plan[0].rungs] == ladder(Budget(param="epochs", min=lo, max=hi, eta=eta))


def test_number_of_brackets_is_optunas_hyperband_formula():
    """optuna/pruners/_hyperband.py: n_brackets = floor(log_{reduction_factor}(max_resource /
    min_resource)) + 1, and each bracket's trial allocation ceil(n_brackets * eta**s / (s + 1))."""
    checked = 0
    for eta in (2, 3, 4, 5):
        for lo in (1, 2, 3):
            for hi in range(lo * eta, 400):
                x = math.log(hi / lo, eta)
                exact = hb.n_brackets(lo, hi, eta)
                assert eta ** (exact - 1) * lo <= hi < eta**exact * lo  # the exact floor
                if abs(x - round(x)) > 1e-9:  # away from exact powers Optuna's float floor is exact too
                    assert exact == math.floor(x) + 1, (lo, hi, eta)
                    checked += 1
                plan = hb.brackets(lo, hi, eta)
                assert [b.n for b in plan] == [math.ceil(exact * eta**s / (s + 1)) for s in range(exact - 1, -1, -1)]
    assert checked > 1000
    # exact powers where the floating-point logarithm falls just short: the formula's value, not its float
    assert math.log(243, 3) < 5 and hb.n_brackets(1, 243, 3) == 6
    assert math.log(1000, 10) < 3 and hb.n_brackets(1, 1000, 10) == 4
    assert hb.n_brackets(1, 242.9, 3) == 5


def test_optunas_pruner_agrees_on_brackets():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for lo, hi, eta in [(1, 81, 3), (1, 100, 3), (2, 64, 2), (1, 30, 5)]:
        pruner = optuna.pruners.HyperbandPruner(min_resource=lo, max_resource=hi, reduction_factor=eta)
        study = optuna.create_study(pruner=pruner)
        pruner._try_initialization(study)  # where Optuna computes its brackets
        assert pruner._n_brackets == hb.n_brackets(lo, hi, eta)
        assert pruner._trial_allocation_budgets == [b.n for b in hb.brackets(lo, hi, eta)]


def test_bad_budgets_are_refused():
    for args in [(0, 10, 3), (10, 10, 3), (1, math.inf, 3), (1, 10, 1), (1, 10, 2.5), (1, 10, True)]:
        with pytest.raises(ValueError):
            hb.brackets(*args)


def test_round_plan_runs_rung_i_of_every_bracket_in_round_i():
    plan = hb.brackets(1, 27, 3)
    rounds = hb.round_plan(plan)
    assert len(rounds) == 4
    assert [[(s, rung.configs, rung.budget) for s, rung in rnd] for rnd in rounds] == [
        [(3, 27, 1), (2, 12, 3), (1, 6, 9), (0, 4, 27)],
        [(3, 9, 3), (2, 4, 9), (1, 2, 27)],
        [(3, 3, 9), (2, 1, 27)],
        [(3, 1, 27)],
    ]


def test_work_counts_increments_when_continuing():
    plan = hb.brackets(1, 81, 3)
    b4 = plan[0]
    assert b4.work == 81 * 1 + 27 * 3 + 9 * 9 + 3 * 27 + 1 * 81
    assert b4.work_continued == 81 * 1 + 27 * 2 + 9 * 6 + 3 * 18 + 1 * 54
    assert hb.total_work(plan) == sum(b.work_continued for b in plan) < hb.total_work(plan, continued=False)


# ---------------------------------------------------------------------------- sampling


def test_brackets_sample_distinct_points_deterministically_per_seed():
    plan = hb.brackets(1, 27, 3)
    a = hb.sample_brackets(SPACE, plan, seed=7)
    assert a == hb.sample_brackets(SPACE, plan, seed=7)
    assert a != hb.sample_brackets(SPACE, plan, seed=8)
    assert {s: len(points) for s, points in a.items()} == {b.s: b.n for b in plan}
    keys = [tuple(sorted(p.items())) for points in a.values() for p in points]
    assert len(keys) == len(set(keys))  # no configuration in two brackets
    assert all(hb.in_space(SPACE, p) for points in a.values() for p in points)
    # each bracket has a seed of its own: brackets draw different streams
    assert hb.bracket_seed(7, 3) != hb.bracket_seed(7, 2) != hb.bracket_seed(8, 2)
    assert a[3][0] != a[2][0]


def test_a_small_space_leaves_brackets_short_but_never_shared():
    space = {"opt": ChoiceDim.model_validate({"choice": ["a", "b", "c"]}),
             "act": ChoiceDim.model_validate({"choice": ["relu", "tanh"]})}
    plan = hb.brackets(1, 9, 3)  # n = 9, 5, 3: 17 wanted, 6 exist
    got = hb.sample_brackets(space, plan, seed=0)
    points = [tuple(sorted(p.items())) for ps in got.values() for p in ps]
    assert len(points) == len(set(points)) == 6
    assert len(got[2]) <= 9 and sum(len(ps) for ps in got.values()) == 6


# ---------------------------------------------------------------------------- promotion


def test_promote_keeps_the_best_k_by_direction():
    scores = [("a", 0.5), ("b", 0.9), ("c", 0.1), ("d", 0.7)]
    assert hb.promote(scores, 2, "max") == ["b", "d"]
    assert hb.promote(scores, 2, "min") == ["c", "a"]
    assert hb.promote(scores, 0, "max") == []
    assert hb.promote(scores, 10, "max") == ["b", "d", "a", "c"]


def test_ties_are_broken_by_key_whatever_the_input_order():
    scores = [("d", 1.0), ("b", 1.0), ("c", 2.0), ("a", 1.0)]
    for order in (scores, scores[::-1], sorted(scores)):
        assert hb.promote(order, 2, "min") == ["a", "b"]
        assert hb.promote(order, 2, "max") == ["c", "a"]
    assert hb.rank([(3, 1.0), (1, 1.0), (2, 1.0)], "max") == [(1, 1.0), (2, 1.0), (3, 1.0)]


@pytest.mark.parametrize("direction", ["max", "min"])
def test_failed_scores_rank_last_and_are_never_promoted(direction):
    bad = {"nan": math.nan, "none": None, "inf": math.inf, "-inf": -math.inf, "bool": True, "str": "0.9"}
    scores = [*bad.items(), ("x", 0.2), ("y", 0.4)]
    ranked = hb.rank(scores, direction)
    assert [k for k, _ in ranked[:2]] == (["y", "x"] if direction == "max" else ["x", "y"])
    assert [k for k, _ in ranked[2:]] == sorted(bad) and all(v is None for _, v in ranked[2:])
    # k above the number of finite scores: fewer go on, no failure fills the gap
    assert hb.promote(scores, 5, direction) == [k for k, _ in ranked[:2]]
    assert hb.promote([("a", None), ("b", math.nan)], 1, direction) == []


def test_rank_refuses_bad_input():
    with pytest.raises(ValueError, match="direction"):
        hb.rank([("a", 1.0)], "maximize")
    with pytest.raises(ValueError, match="twice"):
        hb.rank([("a", 1.0), ("a", 2.0)], "max")
    with pytest.raises(ValueError):
        hb.promote([("a", 1.0)], -1, "max")


def test_rung_outcomes_record_promoted_stopped_and_failed():
    out = hb.rung_outcomes([("a", 0.3), ("b", None), ("c", 0.9), ("d", 0.5)], 2, "max")
    assert out == [
        {"key": "c", "score": 0.9, "outcome": "promoted", "rank": 0},
        {"key": "d", "score": 0.5, "outcome": "promoted", "rank": 1},
        {"key": "a", "score": 0.3, "outcome": "stopped"},
        {"key": "b", "score": None, "outcome": "failed"},
    ]


def test_promote_brackets_uses_each_brackets_next_rung_size():
    plan = hb.brackets(1, 27, 3)  # n = 27, 12, 6, 4
    scores = {
        3: [(f"p{i:02d}", float(i)) for i in range(27)],
        2: [(f"q{i:02d}", float(i)) for i in range(12)],
        1: [(f"r{i}", None if i < 5 else float(i)) for i in range(6)],  # 1 finite: 1 of 2 goes on
    }
    got = hb.promote_brackets(plan, 1, scores, "min")
    assert got == {3: ["p00", "p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08"],
                   2: ["q00", "q01", "q02", "q03"], 1: ["r5"]}
    assert hb.promote_brackets(plan, 3, {3: [("a", 1.0), ("b", 2.0), ("c", 0.5)]}, "max") == {3: ["b"]}
    assert hb.promote_brackets(plan, 2, {}, "max") == {3: [], 2: []}
    with pytest.raises(ValueError):
        hb.promote_brackets(plan, 0, scores, "max")
