"""snakesweep.argv: the step processes' command lines, parsed as argparse would for what the rules write."""

from __future__ import annotations

import pytest

from snakesweep.argv import parse
from snakesweep.steps import main as steps_main
from snakesweep.supervise import _parse as supervise_parse

OPTIONS = {"trial": str, "plan": str, "cycle": int, "cycles": "list", "output": str}


def test_options_values_lists_and_defaults():
    a, rest = parse("p", ["measure", "--trial", "t1", "--plan=p.json", "--cycle", "3", "--cycles", "a", "b c",
                          "--output", "o.json"], OPTIONS, positional="step", defaults={"trial": "-"})
    assert (a.step, a.trial, a.plan, a.cycle, a.cycles, a.output) == ("measure", "t1", "p.json", 3, ["a", "b c"], "o.json")
    assert rest == []
    a, _ = parse("p", ["x", "--cycles", "--output", "o"], OPTIONS, positional="step", defaults={"trial": "-", "cycles": []})
    assert a.trial == "-" and a.cycles == [] and a.cycle is None


def test_unknown_arguments_are_kept_in_order_for_the_step_when_asked():
    a, rest = parse("p", ["eval", "--trial", "t", "--data", "d/ready.json", "--train", "t.json"], {"trial": str},
                    positional="step", keep_unknown=True)
    assert a.step == "eval" and a.trial == "t"
    assert rest == ["--data", "d/ready.json", "--train", "t.json"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["x", "--plan"], "argument --plan: expected one argument"),
        (["x", "--cycle", "two", "--plan", "p"], "argument --cycle: invalid value 'two'"),
        (["x", "--bogus", "1", "--plan", "p"], "unrecognized arguments: --bogus"),
        (["x"], "the following arguments are required: --plan"),
        ([], "the following arguments are required: step, --plan"),
        (["nope", "--plan", "p"], "argument step: invalid choice 'nope' (choose from x, y)"),
    ],
)
def test_mistakes_exit_2_with_argparse_s_wording(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        parse("prog", argv, OPTIONS, required=("plan",), positional="step", choices=("x", "y"))
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"prog: error: {message}"


def test_the_supervisor_passes_the_step_s_own_options_on():
    a, rest = supervise_parse(["measure", "--trial", "t", "--plan", "p", "--log", "l", "--threads", "2",
                               "--data", "d", "--cycle", "1", "--output", "o"])
    assert (a.step, a.trial, a.plan, a.log, a.threads, a.output) == ("measure", "t", "p", "l", 2, "o")
    assert rest == ["--data", "d", "--cycle", "1"]
    assert supervise_parse(["train", "--trial", "t", "--plan", "p", "--log", "l"])[0].threads == 1


def test_the_step_refuses_what_its_rules_never_write(capsys):
    with pytest.raises(SystemExit) as exc:
        steps_main(["train", "--plan", "p", "--log", "l"])
    assert exc.value.code == 2 and "required: --output" in capsys.readouterr().err
