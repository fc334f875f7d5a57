"""Grid expansion and trial ids: deterministic, de-duplicated, stable under additions."""

import pytest

from snakesweep.config import ConfigError, LinRange, LogRange, Sweep
from snakesweep.grid import axis_size, axis_values, canonical_json, expand, flatten, nest, param_names, trial_id


def sweep(**kw):
    return Sweep.model_validate({"name": "s", "workload": "w", **kw})


def test_cartesian_product_times_seeds_in_a_fixed_order():
    trials = expand(sweep(fixed={"epochs": 2}, grid={"lr": [0.1, 0.2], "opt": ["sgd", "adam"]}, seeds=[0, 1]))
    assert [(t.params["lr"], t.params["opt"], t.params["seed"]) for t in trials] == [
        (0.1, "sgd", 0), (0.1, "sgd", 1), (0.1, "adam", 0), (0.1, "adam", 1),
        (0.2, "sgd", 0), (0.2, "sgd", 1), (0.2, "adam", 0), (0.2, "adam", 1),
    ]
    assert all(t.params["epochs"] == 2 for t in trials)
    assert [t.id for t in trials] == [t.id for t in expand(sweep(fixed={"epochs": 2}, grid={"lr": [0.1, 0.2], "opt": ["sgd", "adam"]}, seeds=[0, 1]))]


def test_ids_depend_only_on_parameters_and_survive_adding_trials():
    small = {t.params["lr"]: t.id for t in expand(sweep(grid={"lr": [0.1, 0.2]}))}
    large = {t.params["lr"]: t.id for t in expand(sweep(grid={"lr": [0.05, 0.1, 0.2, 0.4]}))}
    assert small[0.1] == large[0.1] and small[0.2] == large[0.2]
    assert len(set(large.values())) == 4
    # key order and number spelling do not matter; the workload does
    assert trial_id("w", {"lr": 0.1, "seed": 0}) == trial_id("w", {"seed": 0, "lr": 1e-1})
    assert trial_id("w", {"epochs": 2, "seed": 0}) == trial_id("w", {"epochs": 2.0, "seed": 0})
    assert trial_id("w", {"lr": 0.1, "seed": 0}) != trial_id("other", {"lr": 0.1, "seed": 0})
    assert trial_id("w", {"lr": 0.1, "seed": 0}) != trial_id("w", {"lr": 0.1, "seed": 1})


def test_duplicates_are_dropped_and_experiments_merge_over_fixed():
    trials = expand(sweep(
        fixed={"epochs": 5},
        grid={"lr": [0.1, 0.1, 1e-1]},
        seeds=[0],
        experiments=[{"lr": 0.1}, {"lr": 0.5, "epochs": 1}, {"lr": 0.7, "seed": 9}],
    ))
    assert [t.params for t in trials] == [
        {"epochs": 5, "lr": 0.1, "seed": 0},
        {"epochs": 1, "lr": 0.5, "seed": 0},
        {"epochs": 5, "lr": 0.7, "seed": 9},
    ]


def test_ranges_are_inclusive_and_normalised():
    assert axis_values(LogRange(log=(1e-4, 1e-1), num=4)) == [0.0001, 0.001, 0.01, 0.1]
    assert axis_values(LinRange(lin=(0.0, 0.5), num=6)) == [0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert axis_values(LinRange(lin=(2.0, 3.0), num=1)) == [2]


def test_exclude_drops_matching_trials_and_rejects_unknown_keys():
    trials = expand(sweep(grid={"lr": [0.1, 0.2], "opt": ["sgd", "adam"]}, exclude=[{"lr": 0.2, "opt": "adam"}]))
    assert [(t.params["lr"], t.params["opt"]) for t in trials] == [(0.1, "sgd"), (0.1, "adam"), (0.2, "sgd")]
    with pytest.raises(ConfigError, match=r"'sweep.exclude\[0\]' names 'momentum'"):
        expand(sweep(grid={"lr": [0.1]}, exclude=[{"momentum": 0.9}]))


def test_size_limits_state_the_count_and_the_key():
    with pytest.raises(ConfigError, match=r"expands to 12 trials, more than 'sweep.max_trials' = 10"):
        expand(sweep(grid={"a": [1, 2, 3], "b": [1, 2]}, seeds=[0, 1], max_trials=10))
    with pytest.raises(ConfigError, match=r"expands to 1000000 trials"):  # refused before being built
        expand(sweep(grid={"a": list(range(1000)), "b": list(range(1000))}, max_trials=10))
    with pytest.raises(ConfigError, match="both empty"):
        expand(sweep(grid={}))


def test_dotted_keys_nest_for_the_workload():
    trials = expand(sweep(fixed={"optim": {"momentum": 0.9}}, grid={"optim.lr": [0.1]}))
    assert trials[0].params == {"optim.momentum": 0.9, "optim.lr": 0.1, "seed": 0}
    assert nest(trials[0].params) == {"optim": {"momentum": 0.9, "lr": 0.1}, "seed": 0}
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}
    with pytest.raises(ConfigError, match="clashes"):
        nest({"a": 1, "a.b": 2})
    assert param_names(trials) == ["optim.momentum", "optim.lr", "seed"]


def test_canonical_json_is_order_free():
    assert canonical_json({"b": 1, "a": [1.0, 0.1]}) == canonical_json({"a": [1, 1e-1], "b": 1.0})


def test_axes_are_counted_before_they_are_built(monkeypatch):
    """A range's `num` may be 10**12 (26 s and 5.7 GB, then MemoryError, before the count was
    checked): the product of the axis sizes is compared with max_trials before any value exists."""
    import snakesweep.grid as grid

    assert axis_size(LogRange(log=(1e-3, 1.0), num=10**12)) == 10**12
    assert axis_size(LinRange(lin=(0.0, 1.0), num=3)) == 3 and axis_size([1, 2]) == 2
    built = []
    monkeypatch.setattr(grid, "axis_values", lambda axis: built.append(axis) or [])
    for g in ({"lr": {"log": [1e-3, 1], "num": 10**12}}, {"a": [1, 2], "lr": {"lin": [0, 1], "num": 10**7}},
              [{"a": [1]}, {"lr": {"lin": [0, 1], "num": 10**9}}]):
        with pytest.raises(ConfigError, match="more than 'sweep.max_trials' = 1000"):
            expand(sweep(grid=g))
    assert built == []  # refused before a single axis was built
