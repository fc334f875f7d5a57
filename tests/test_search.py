"""Search beyond the grid (issue 10): spaces, samplers, the promotion rule, round choices, config checks.

Real scipy, numpy and Optuna throughout; result files are written with the project's own writer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import qmc

from snakesweep import search
from snakesweep.config import Budget, ConfigError, validate_config
from snakesweep.grid import expand
from snakesweep.plan import build_plan, load_plan, write_plan
from snakesweep.results import atomic_write_json, result_record, utc_now
from snakesweep.rounds import chosen_rounds, round_path
from snakesweep.space import from_unit, probe, sample
from snakesweep.workloads import validate_builtin_params

SPACE = {
    "lr": {"loguniform": [1.0e-4, 1.0e-1]},
    "hidden": {"int": [16, 512], "log": True},
    "optimizer": {"choice": ["sgd", "adam"]},
    "dropout": {"uniform": [0.0, 0.5]},
}


def cfg_of(search_, space=SPACE, **sweep):
    raw = {"sweep": {"name": "s", "workload": "digits_mlp", "search": search_, "space": space, **sweep}}
    return validate_config(raw, "my.yaml")


def error_of(search_, space=SPACE, **sweep) -> str:
    with pytest.raises(ConfigError) as exc:
        cfg_of(search_, space, **sweep)
    return str(exc.value)


# ---------------------------------------------------------------------------- spaces and samplers


def test_random_and_sobol_points_are_deterministic_in_bounds_and_prefix_stable():
    cfg = cfg_of({"method": "random", "n_trials": 4})
    for method in ("random", "sobol"):
        a = sample(cfg.sweep.space, 16, 7, method)
        assert a == sample(cfg.sweep.space, 16, 7, method)
        assert sample(cfg.sweep.space, 8, 7, method) == a[:8]  # growing n_trials keeps earlier points
        assert a != sample(cfg.sweep.space, 16, 8, method)
        for p in a:
            assert 1e-4 <= p["lr"] <= 1e-1 and 0 <= p["dropout"] <= 0.5
            assert isinstance(p["hidden"], int) and 16 <= p["hidden"] <= 512
            assert p["optimizer"] in ("sgd", "adam")
    # sobol is scipy's scrambled sequence mapped through the dimensions (sorted by name)
    u = qmc.Sobol(4, scramble=True, rng=7).random(16)
    dims = sorted(cfg.sweep.space.items())
    assert sample(cfg.sweep.space, 16, 7, "sobol") == [
        {name: from_unit(dim, x) for (name, dim), x in zip(dims, row)} for row in u
    ]


def test_sobol_points_cover_the_space_more_evenly_than_random_ones():
    cfg = cfg_of({"method": "sobol", "n_trials": 64}, space={"a": {"uniform": [0, 1]}, "b": {"uniform": [0, 1]}})
    disc = {m: qmc.discrepancy(np.array([[p["a"], p["b"]] for p in sample(cfg.sweep.space, 64, 0, m)]))
            for m in ("random", "sobol")}
    assert disc["sobol"] < disc["random"] / 3


def test_log_dimensions_spread_evenly_in_log_space():
    cfg = cfg_of({"method": "random", "n_trials": 4})
    lrs = np.log10([p["lr"] for p in sample(cfg.sweep.space, 2000, 0, "random")])
    assert abs(np.mean(lrs) - (-2.5)) < 0.05  # the middle of [-4, -1]
    hidden = np.array([p["hidden"] for p in sample(cfg.sweep.space, 2000, 0, "random")])
    assert 0.4 < np.mean(hidden < 90) < 0.6  # 90 ~ geometric middle of [16, 512]
    assert {p["optimizer"] for p in probe(cfg.sweep.space)} == {"sgd", "adam"}


def test_yaml_key_order_does_not_change_the_points():
    a = cfg_of({"method": "sobol", "n_trials": 4})
    b = cfg_of({"method": "sobol", "n_trials": 4}, space=dict(reversed(list(SPACE.items()))))
    assert [t.id for t in expand(a.sweep)] == [t.id for t in expand(b.sweep)]


# ---------------------------------------------------------------------------- the promotion rule


def test_ladder_ends_at_the_top_budget():
    assert search.ladder(Budget(param="epochs", min=1, max=27, eta=3)) == [1, 3, 9, 27]
    assert search.ladder(Budget(param="epochs", min=1, max=10, eta=3)) == [1, 3, 10]
    assert search.ladder(Budget(param="epochs", min=2, max=8, eta=2)) == [2, 4, 8]
    assert search.ladder(Budget(param="frac", min=0.1, max=1.0, eta=3)) == [0.111111, 0.333333, 1.0]


def test_promote_keeps_the_top_fraction_best_first():
    scores = [(f"c{i}", float(i)) for i in range(9)]
    assert search.promote(scores, 3, "max") == ["c8", "c7", "c6"]
    assert search.promote(scores, 3, "min") == ["c0", "c1", "c2"]


def test_promote_breaks_ties_by_configuration_whatever_the_order():
    scores = [("b", 1.0), ("a", 1.0), ("d", 1.0), ("c", 0.5)]
    assert search.promote(scores, 2, "max") == ["a", "b"]
    assert search.promote(list(reversed(scores)), 2, "max") == ["a", "b"]


def test_failed_configurations_never_survive_and_do_not_change_the_schedule():
    scores = [("a", None), ("b", 0.1), ("c", None), ("d", float("nan")), ("e", 0.2), ("f", None)]
    assert search.promote(scores, 3, "max") == ["e", "b"]  # keep = 6 // 3 = 2, from the successes
    assert search.promote([("a", None), ("b", None), ("c", 0.3)], 2, "max") == ["c"]
    assert search.promote([("a", None), ("b", None)], 2, "max") == []


def test_fewer_configurations_than_eta_still_promote_the_best_one():
    assert search.promote([("a", 0.5), ("b", 0.7)], 3, "max") == ["b"]
    assert search.promote([("a", 0.5)], 3, "max") == ["a"]


def test_scores_are_means_over_seeds_and_one_failed_seed_fails_the_configuration():
    trials = [
        {"trial": "t1", "params": {"x": 1, "seed": 0}},
        {"trial": "t2", "params": {"x": 1, "seed": 1}},
        {"trial": "t3", "params": {"x": 2, "seed": 0}},
        {"trial": "t4", "params": {"x": 2, "seed": 1}},
    ]
    metrics = {"t1": {"acc": 0.5}, "t2": {"acc": 0.7}, "t3": {"acc": 0.9}, "t4": None}
    g = search.score_configs(trials, metrics, ["acc"])
    assert [(x["config"], x["trials"], x["values"]) for x in g] == [
        ({"x": 1}, ["t1", "t2"], [0.6]), ({"x": 2}, ["t3", "t4"], None)]


# ---------------------------------------------------------------------------- optuna


def _history(points, f):
    return [(p, [f(p)]) for p in points]


def test_optuna_suggestions_are_deterministic_for_a_seed_and_a_set_of_results():
    space = cfg_of({"method": "optuna", "rounds": 2, "batch": 4}).sweep.space
    round0 = search.suggest(space, 0, 0, 6, [], ["max"])
    assert round0 == search.suggest(space, 0, 0, 6, [], ["max"])
    assert round0 != search.suggest(space, 1, 0, 6, [], ["max"])
    hist = _history(round0, lambda p: -abs(math.log10(p["lr"]) + 2))
    a = search.suggest(space, 0, 1, 6, hist, ["max"])
    assert a == search.suggest(space, 0, 1, 6, hist, ["max"])
    assert a != search.suggest(space, 0, 1, 6, _history(round0, lambda p: p["dropout"]), ["max"])
    assert not {json.dumps(p, sort_keys=True) for p in a} & {json.dumps(p, sort_keys=True) for p in round0}


def test_optuna_tpe_moves_towards_good_results():
    space = cfg_of({"method": "optuna", "rounds": 2, "batch": 4}, space={"x": {"uniform": [0, 10]}}).sweep.space
    hist = _history(search.suggest(space, 0, 0, 16, [], ["min"]), lambda p: (p["x"] - 8) ** 2)
    later = search.suggest(space, 0, 1, 16, hist, ["min"])
    assert np.median([abs(p["x"] - 8) for p in later]) < np.median([abs(c["x"] - 8) for c, _ in hist])


def test_optuna_multi_objective_failed_trials_and_exhausted_choices():
    space = cfg_of({"method": "optuna", "rounds": 2, "batch": 4}, space={"o": {"choice": ["a", "b", "c"]}}).sweep.space
    hist = [({"o": "a"}, [0.5, 1.0]), ({"o": "b"}, None)]
    pts = search.suggest(space, 0, 1, 4, hist, ["max", "min"])
    assert pts == [{"o": "c"}]  # the only point not run yet; the round is smaller


# ---------------------------------------------------------------------------- rounds from result files


def _write_results(results, doc, acc):
    for t in doc["trials"]:
        for step, metrics in (("train", {"train_loss": 0.1}), ("eval", {"eval_accuracy": acc(t["params"])})):
            if metrics is None:
                continue
            atomic_write_json(results / "trials" / t["trial"] / f"{step}.json", result_record(
                trial=t["trial"], step=step, params=t["params"], metrics=metrics, started_at=utc_now(),
                ended_at=utc_now(), duration_s=0.0, device="cpu", sweep_hash="x"))


def test_halving_rounds_promote_from_the_result_files(tmp_path):
    cfg = cfg_of({"method": "halving", "n_trials": 9, "budget": {"param": "epochs", "min": 1, "max": 9, "eta": 3}},
                 space={"lr": {"loguniform": [1e-4, 1e-1]}}, steps=["train", "eval"])
    results = tmp_path / "results"
    r0 = search.choose_round(cfg, 0, [], results)
    assert len(r0["trials"]) == 9 and {t["params"]["epochs"] for t in r0["trials"]} == {1}
    _write_results(results, r0, lambda p: p["lr"])  # the largest lr is best
    failed = max(r0["trials"], key=lambda t: t["params"]["lr"])
    (results / "trials" / failed["trial"] / "eval.json").unlink()  # ... but its eval failed
    r1 = search.choose_round(cfg, 1, [r0], results)
    ranked = sorted((t for t in r0["trials"] if t is not failed), key=lambda t: -t["params"]["lr"])
    assert [t["params"]["lr"] for t in r1["trials"]] == [t["params"]["lr"] for t in ranked[:3]]
    assert {t["params"]["epochs"] for t in r1["trials"]} == {3} and r1["budget"] == 3
    outcomes = {c["config"]["lr"]: c["outcome"] for c in r1["selection"]["configs"]}
    assert outcomes[failed["params"]["lr"]] == "failed"
    assert list(outcomes.values()).count("promoted") == 3 and list(outcomes.values()).count("stopped") == 5
    assert r1["parent"] == search.round_digest(r0)
    assert search.choose_round(cfg, 1, [r0], results) == r1  # the same files, the same choice


def test_load_plan_adds_the_rounds_of_this_search_only(tmp_path):
    cfg = cfg_of({"method": "optuna", "rounds": 3, "batch": 2}, space={"lr": {"loguniform": [1e-4, 1e-1]}})
    plan_dir = tmp_path / "results" / "plan"
    plan = build_plan(cfg, expand(cfg.sweep))
    write_plan(plan, plan_dir / "trials.json", plan_dir / "trials.csv")
    assert plan["trials"] == [] and plan["param_names"] == ["lr", "seed"]
    r0 = search.choose_round(cfg, 0, [], tmp_path / "results")
    atomic_write_json(round_path(plan_dir, 0), r0)
    loaded = load_plan(plan_dir / "trials.json")
    assert [t["trial"] for t in loaded["trials"]] == [t["trial"] for t in r0["trials"]]
    assert all(t["round"] == 0 for t in loaded["trials"])
    # a round 1 chosen after another round 0 (a stale file) is not this search's
    atomic_write_json(round_path(plan_dir, 1), {**r0, "round": 1, "parent": "something-else"})
    assert len(chosen_rounds(plan_dir, plan["search"])) == 1
    other = cfg_of({"method": "optuna", "rounds": 3, "batch": 2, "seed": 5}, space={"lr": {"loguniform": [1e-4, 1e-1]}})
    assert chosen_rounds(plan_dir, build_plan(other, [])["search"]) == []


def test_final_failures_are_the_reasons_that_are_not_retried(tmp_path):
    for trial, reason in (("aaaaaaaaaa", "exception"), ("bbbbbbbbbb", "timeout"), ("cccccccccc", "orphaned"),
                          ("dddddddddd", "budget"), ("eeeeeeeeee", "exit")):
        atomic_write_json(tmp_path / "train" / f"{trial}.error.json", {"reason": reason})
    assert search.final_failures(tmp_path, ["train", "eval"], ["timeout", "signal", "orphaned"]) == {
        "aaaaaaaaaa", "eeeeeeeeee"}


# ---------------------------------------------------------------------------- the sweep file


@pytest.mark.parametrize(
    ("search_", "space", "expected"),
    [
        ({"method": "random", "n_trials": 4}, {"lr": {"uniform": [0.5, 0.1]}}, "'sweep.space.lr.uniform': the bounds [0.5, 0.1] are in the wrong order"),
        ({"method": "random", "n_trials": 4}, {"lr": {"uniform": [0.1, 0.1]}}, "the range [0.1, 0.1] is empty"),
        ({"method": "random", "n_trials": 4}, {"lr": {"loguniform": [0, 0.1]}}, "'sweep.space.lr.loguniform': log of a non-positive bound"),
        ({"method": "random", "n_trials": 4}, {"h": {"int": [0, 8], "log": True}}, "'sweep.space.h': log of a non-positive bound"),
        ({"method": "random", "n_trials": 4}, {"h": {"int": [1.5, 8]}}, "int bounds must be whole numbers"),
        ({"method": "random", "n_trials": 4}, {"o": {"choice": []}}, "'sweep.space.o.choice'"),
        ({"method": "random", "n_trials": 4}, {"o": {"choice": ["a", "a"]}}, "the choices repeat a value"),
        ({"method": "random", "n_trials": 4}, {"lr": {"normal": [0, 1]}}, "'sweep.space.lr': a space dimension is one of"),
        ({"method": "random"}, {"lr": {"uniform": [0, 1]}}, "search method 'random' needs search.n_trials"),
        ({"method": "random", "n_trials": 4, "rounds": 3}, {"lr": {"uniform": [0, 1]}}, "search.rounds has no meaning for method 'random'"),
        ({"method": "optuna", "rounds": 2}, {"lr": {"uniform": [0, 1]}}, "needs search.batch"),
        ({"method": "random", "n_trials": 4}, {}, "search method 'random' needs sweep.space"),
        ({"method": "grid"}, {"lr": {"uniform": [0, 1]}}, "sweep.space is drawn from by search.method"),
        ({"method": "halving", "n_trials": 4, "budget": {"param": "epochs", "min": 9, "max": 1}}, {"lr": {"uniform": [0, 1]}}, "budget min (9) must be below max (1)"),
        ({"method": "halving", "n_trials": 4, "budget": {"param": "epochs", "min": 1, "max": 2, "eta": 3}}, {"lr": {"uniform": [0, 1]}}, "there would be a single round"),
        ({"method": "halving", "n_trials": 4, "budget": {"param": "lr", "min": 1, "max": 9}}, {"lr": {"uniform": [0, 1]}}, "the budget parameter 'lr' is set by the search's ladder"),
        ({"method": "halving", "budget": {"param": "epochs", "min": 1, "max": 9}}, {"lr": {"uniform": [0, 1]}}, "needs search.n_trials"),
        ({"method": "sobol", "n_trials": 4, "sampler": "x"}, {"lr": {"uniform": [0, 1]}}, "unknown key 'sweep.search.sampler'"),
    ],
)
def test_search_mistakes_are_one_line_with_the_key_and_a_fix(search_, space, expected):
    message = error_of(search_, space)
    assert expected in message, message
    assert message.startswith("my.yaml: ") and "fix:" in message and "\n" not in message


def test_a_budget_parameter_the_builtin_workload_lacks_fails_at_parse_time():
    cfg = cfg_of({"method": "halving", "n_trials": 3, "budget": {"param": "epochz", "min": 1, "max": 9}},
                 space={"lr": {"loguniform": [1e-4, 1e-1]}})
    with pytest.raises(ConfigError, match="digits_mlp has no parameter 'epochz'"):
        for t in search.probe_trials(cfg):
            validate_builtin_params(cfg.sweep.workload, t.params, "my.yaml")


def test_a_search_larger_than_max_trials_is_refused():
    cfg = cfg_of({"method": "optuna", "rounds": 50, "batch": 30}, space={"lr": {"loguniform": [1e-4, 1e-1]}})
    with pytest.raises(ConfigError, match="runs up to 1500 trials, more than 'sweep.max_trials' = 1000"):
        search.probe_trials(cfg)


def test_grid_lists_are_unions_without_duplicates():
    raw = {"sweep": {"name": "s", "workload": "digits_mlp", "grid": [
        {"optimizer": ["sgd"], "momentum": [0.0, 0.9], "lr": [0.1]},
        {"optimizer": ["adam"], "lr": [0.1, 0.01]},
        {"optimizer": ["sgd"], "momentum": [0.9], "lr": [0.1]},  # repeats a point of the first
    ]}}
    trials = expand(validate_config(raw, "my.yaml").sweep)
    assert [t.params for t in trials] == [
        {"optimizer": "sgd", "momentum": 0.0, "lr": 0.1, "seed": 0},
        {"optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "seed": 0},
        {"optimizer": "adam", "lr": 0.1, "seed": 0},
        {"optimizer": "adam", "lr": 0.01, "seed": 0},
    ]
    bad = {"sweep": {**raw["sweep"], "grid": [{"lr": []}]}}
    with pytest.raises(ConfigError, match=r"'sweep\.grid\.0\.lr': List should have at least 1 item"):
        validate_config(bad, "my.yaml")


def test_variants_override_the_sweep_and_unknown_ones_are_named():
    raw = {"sweep": {"name": "s", "workload": "digits_mlp", "grid": {"lr": [0.1, 0.01]}, "seeds": [0, 1, 2],
                     "variants": {"small": {"grid": {"lr": [0.1]}, "seeds": [0]}, "full": {}}},
           "variant": "small"}
    cfg = validate_config(raw, "my.yaml")
    assert [t.params for t in expand(cfg.sweep)] == [{"lr": 0.1, "seed": 0}]
    assert len(expand(validate_config({**raw, "variant": "full"}, "my.yaml").sweep)) == 6
    with pytest.raises(ConfigError) as exc:
        validate_config({**raw, "variant": "tiny"}, "my.yaml")
    assert "variant 'tiny' is not in sweep.variants (fix: use one of: small, full)" in str(exc.value)
    with pytest.raises(ConfigError, match="unknown key 'sweep.gird'"):
        validate_config({**raw, "sweep": {**raw["sweep"], "variants": {"small": {"gird": {}}}}}, "my.yaml")


def test_the_grid_plan_is_unchanged_and_search_plans_say_their_search():
    grid = validate_config({"sweep": {"name": "s", "workload": "digits_mlp", "grid": {"lr": [0.1]}}}, "my.yaml")
    plan = build_plan(grid, expand(grid.sweep))
    assert "search" not in plan and set(plan["trials"][0]) == {"trial", "params"}
    rnd = cfg_of({"method": "random", "n_trials": 3})
    plan = build_plan(rnd, expand(rnd.sweep))
    assert plan["search"]["method"] == "random" and [t["round"] for t in plan["trials"]] == [0, 0, 0]


def test_the_search_examples_are_valid_sweeps_and_their_variants_too():
    import yaml

    from conftest import REPO

    files = sorted((REPO / "config/examples").glob("*-search.yaml"))
    assert {f.name for f in files} >= {"halving-search.yaml", "optuna-search.yaml", "sobol-search.yaml"}
    for f in files:
        raw = yaml.safe_load(f.read_text())
        for variant in [None, *raw["sweep"].get("variants", {})]:
            cfg = validate_config({**raw, "variant": variant}, str(f))
            assert cfg.sweep.search.method != "grid"
            for t in search.probe_trials(cfg) if search.in_rounds(cfg) else expand(cfg.sweep):
                validate_builtin_params(cfg.sweep.workload, t.params, str(f))
