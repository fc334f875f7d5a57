"""Command workloads (snakesweep/workloads/command.py): formatting, the args modes, Hydra quoting
through a real Hydra app, metrics, failures and the measurement record, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from snakesweep.config import CommandWorkload, ConfigError, MeasureSettings
from snakesweep.energy import UnavailableMeter, open_meter
from snakesweep.workloads import command as cw

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def wl(**kw) -> CommandWorkload:
    return CommandWorkload.model_validate(kw)


class Log(list):
    def __call__(self, line: str) -> None:
        self.append(line)


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Commands run from the current directory (where snakemake runs): a fresh one per test."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def script(path: Path, body: str) -> str:
    path.write_text(textwrap.dedent(body))
    return str(path)


# A script that records the argv it received and writes metrics.json into --out (the last argument).
ARGV_DUMP = """\
    import json, sys
    from pathlib import Path
    out = Path(sys.argv[-1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "argv.json").write_text(json.dumps(sys.argv[1:]))
    (out / "metrics.json").write_text(json.dumps({"n_args": len(sys.argv) - 1}))
"""


def train(workload: CommandWorkload, params: dict, cwd: Path, trial: str = "t1", log: Log | None = None) -> dict:
    return cw.run_train(
        workload, params, out_dir=Path("results/trials", trial, "train"), data_dir=Path("results/data/x"),
        trial=trial, device="cpu", log=log if log is not None else Log(),
    )


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    "value, text",
    [
        ("a b", "a b"),
        ("1e-3", "1e-3"),
        ("true", "true"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (3, "3"),
        (-7, "-7"),
        (0.1, "0.1"),
        (0.1 + 2e-17, "0.1"),
        (0.30000000000000004, "0.3"),
        (2.0, "2.0"),
        (1e-05, "1e-05"),
        (10**-3.0, "0.001"),
        ([64, 32], "[64,32]"),
        ({"a": 1, "b": [True, None, "x y"]}, '{"a":1,"b":[true,null,"x y"]}'),
        ("é ✓", "é ✓"),
    ],
)
def test_render_every_yaml_type(value, text):
    assert cw.render(value) == text


def test_each_element_is_formatted_on_its_own_with_dotted_names_escapes_and_context():
    w = wl(command={"train": ["run", "--lr={lr}", "{model.width}x{model.depth}", "{{lr}}", "{out_dir}/ckpt",
                              "{seed}", "{trial}", "{data_dir}", "{lr}{lr}", "--nested", "{cfg}"]})
    params = {"lr": 0.1, "model.width": 64, "model.depth": 2, "seed": 3, "cfg": {"a": [1, 2]}}
    ctx = {"out_dir": "results/trials/t1/train", "data_dir": "results/data/k", "seed": "3", "trial": "t1"}
    assert cw.build_argv(w, "train", params, ctx) == [
        "run", "--lr=0.1", "64x2", "{lr}", "results/trials/t1/train/ckpt", "3", "t1", "results/data/k",
        "0.10.1", "--nested", '{"a":[1,2]}',
    ]


def test_a_dotted_name_is_one_field_not_an_attribute_lookup():
    # str.format would look up params["model"].width; the flat dict has only "model.width"
    w = wl(command={"train": ["{model.width}", "{a.b.c}"]})
    assert cw.build_argv(w, "train", {"model.width": 8, "a.b.c": "x"}, {"out_dir": "o"}) == ["8", "x"]
    assert cw.placeholders(w, "train") == {"model.width", "a.b.c"}
    assert cw.placeholders(w, "eval") == set()


def test_a_shell_metacharacter_value_arrives_as_one_argument(cwd):
    dump = script(cwd / "dump.py", ARGV_DUMP)
    evil = "; touch pwned #"
    w = wl(command={"train": ["python", dump, "{name}", "$(touch pwned2)", "`touch pwned3`", "{out_dir}"]})
    train(w, {"name": evil, "seed": 0}, cwd)
    got = json.loads((cwd / "results/trials/t1/train/argv.json").read_text())
    assert got == [evil, "$(touch pwned2)", "`touch pwned3`", "results/trials/t1/train"]
    assert not list(cwd.glob("pwned*"))


def test_flags_append_every_parameter_as_one_element_each():
    w = wl(command={"train": ["python", "t.py"], "prepare": ["p"]}, args="flags")
    params = {"lr": 0.01, "model.width": 64, "name": "; rm -rf /", "opt": "-x", "flag": True, "none": None, "seed": 1}
    assert cw.build_argv(w, "train", params, {"out_dir": "o"}) == [
        "python", "t.py", "--lr=0.01", "--model.width=64", "--name=; rm -rf /", "--opt=-x", "--flag=true",
        "--none=null", "--seed=1",
    ]
    assert cw.build_argv(w, "prepare", {}, {"data_dir": "d"}) == ["p"]  # prepare has no trial


def test_flags_reach_a_real_argparse_script(cwd):
    """train_cli.py unchanged: --lr/--l2/--seed appended; a value starting with '-' still parses."""
    w = wl(command={"train": ["python", str(EXAMPLES / "train_cli.py"), "--out", "{out_dir}"]}, args="flags")
    m = train(w, {"lr": 0.3, "l2": -0.0, "epochs": 2, "seed": 1}, cwd)
    assert 0.5 < m["val_accuracy"] <= 1 and m["train_loss"] > 0
    saved = json.loads((cwd / "results/trials/t1/train/model.json").read_text())
    assert saved == {"lr": 0.3, "l2": -0.0, "epochs": 2, "seed": 1}
    assert (cwd / "results/trials/t1/train/model.npz").is_file()


def test_hydra_appends_quoted_overrides_and_its_run_dir():
    w = wl(command={"train": ["python", "app.py", "stage=train"]}, args="hydra")
    params = {"optimizer.lr": 0.1, "name": "it's; a=b,c", "tag": "1e-3", "on": True, "x": None, "seed": 0}
    assert cw.build_argv(w, "train", params, {"out_dir": "results/trials/t/train"}) == [
        "python", "app.py", "stage=train", "optimizer.lr=0.1", "name='it\\'s; a=b,c'", "tag='1e-3'", "on=true",
        "x=null", "seed=0", "hydra.run.dir='results/trials/t/train'", "hydra.sweep.dir='results/trials/t/train'",
        "hydra.sweep.subdir=.",
    ]


def test_hydra_value_refuses_what_the_app_could_not_receive_verbatim():
    w = wl(command={"train": ["app"]}, args="hydra")
    with pytest.raises(ValueError, match="parameter 'tag': the value '\\?\\?\\?' means 'missing'"):
        cw.build_argv(w, "train", {"tag": "???"}, {"out_dir": "o"})
    with pytest.raises(ValueError, match="dict key"):
        cw.hydra_value({"it's": 1})


HYDRA_VALUES = [
    "a b; c=d,e", "it's", 'say "hi"', "back\\slash", "trail\\", "trail\\\\", "q\\'x", "${n}", "\\${n}",
    "${oc.env:HOME}", "a${b", "1e-3", "true", "null", "", " lead", "x#y", "[1,2]", "{a:1}", "$x", "tab\tx",
    "new\nline", "é ✓", "'", "\\", "=", "~x", "+x", "@pkg", "a:b", "}{", "*?|%",
    None, True, False, 0, -3, 10**20, 0.1, 1e-05, 2.0, -0.5, 1e20, [1, "a b", None, [True]],
    {"k": "v;w", "n": 1, "a.b": 2, "x y": [1]}, [], {},
]

ECHO_APP = """\
    import json
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    @hydra.main(version_base="1.3", config_path="conf", config_name="config")
    def main(cfg):
        out = HydraConfig.get().runtime.output_dir
        received = OmegaConf.to_container(cfg.v, resolve=True)
        with open(out + "/metrics.json", "w") as fh:
            json.dump({"n_received": len(received)}, fh)
        with open(out + "/received.json", "w") as fh:
            json.dump(received, fh)

    main()
"""


def test_hydra_quoting_round_trips_through_a_real_hydra_app(cwd):
    pytest.importorskip("hydra")
    (cwd / "app/conf").mkdir(parents=True)
    names = [f"k{i}" for i in range(len(HYDRA_VALUES))]
    (cwd / "app/conf/config.yaml").write_text(
        "seed: 0\nv:\n" + "".join(f"  {n}: placeholder\n" for n in names)
    )
    app = script(cwd / "app/echo.py", ECHO_APP)
    before = sorted(p.name for p in cwd.iterdir())
    w = wl(command={"train": ["python", app]}, args="hydra")
    params = {**{f"v.{n}": v for n, v in zip(names, HYDRA_VALUES)}, "seed": 1}
    assert train(w, params, cwd) == {"n_received": len(HYDRA_VALUES)}
    received = json.loads((cwd / "results/trials/t1/train/received.json").read_text())
    for n, v in zip(names, HYDRA_VALUES):
        assert received[n] == v and type(received[n]) is type(v), (n, v, received[n])
    # nothing of Hydra's lands outside the step's directory: no outputs/, multirun/, .hydra, app log
    assert sorted(p.name for p in cwd.iterdir()) == sorted(before + ["results"])
    assert sorted(p.name for p in (cwd / "results/trials/t1/train").iterdir()) == [
        ".hydra", "echo.log", "metrics.json", "received.json"
    ]


def test_the_example_hydra_app_trains_and_evaluates_in_the_step_directories(cwd):
    pytest.importorskip("hydra")
    app = str(EXAMPLES / "hydra_app/app.py")
    w = wl(command={"train": ["python", app], "eval": ["python", app, "stage=eval", "model_dir={train_dir}"]},
           args="hydra")
    params = {"optimizer.lr": 0.3, "optimizer.epochs": 3, "run_name": "a b; c", "seed": 2}
    m = train(w, params, cwd)
    assert m["run_name"] == "a b; c" and 0.5 < m["val_accuracy"] <= 1
    e = cw.run_eval(w, params, out_dir=Path("results/trials/t1/eval"), train_dir=Path("results/trials/t1/train"),
                    data_dir=Path("d"), trial="t1", device="cpu", log=Log())
    assert 0.5 < e["eval_accuracy"] <= 1
    cfg = (cwd / "results/trials/t1/train/.hydra/config.yaml").read_text()
    assert "lr: 0.3" in cfg and "seed: 2" in cfg
    assert sorted(p.name for p in cwd.iterdir()) == ["results"]


def test_a_parameter_the_hydra_app_lacks_fails_naming_it_and_the_fix(cwd):
    pytest.importorskip("hydra")
    w = wl(command={"train": ["python", str(EXAMPLES / "hydra_app/app.py")]}, args="hydra")
    with pytest.raises(cw.HydraKeyMissing) as err:
        train(w, {"optimizer.lrr": 0.1, "seed": 0}, cwd)
    msg = str(err.value)
    assert msg.startswith("app.py: the Hydra app's config has no key 'optimizer.lrr' for the sweep parameter")
    assert "fix: add optimizer.lrr to the app's config" in msg and "Could not override 'optimizer.lrr'" in msg
    assert not (cwd / "results/trials/t1/train/metrics.json").exists()


# --------------------------------------------------------------------------- parse-time checks


def check(workload: CommandWorkload, steps=("train", "eval", "measure"), params=("lr", "seed")):
    cw.check_command_workload(workload, list(steps), set(params), "sweep.yaml")


def test_check_accepts_parameters_and_step_directories(cwd):
    (cwd / "src").mkdir()
    (cwd / "train.py").write_text("")
    check(wl(command={"prepare": ["p", "{data_dir}"], "train": ["python", "train.py", "{lr}", "{out_dir}", "{seed}"],
                      "eval": ["e", "{train_dir}", "{trial}", "{data_dir}", "{{literal}}"],
                      "measure": ["m", "{train_dir}"]},
             sources={"train": ["train.py", "src"]}))


@pytest.mark.parametrize(
    "command, steps, message",
    [
        ({"train": ["t", "{lrr}"]}, ["train"],
         "sweep.yaml: 'sweep.workload.command.train' uses {lrr}, which names no parameter (did you mean {lr}? fix:"),
        ({"train": ["t", "{out}"]}, ["train"], "uses {out}, which names no parameter (did you mean {out_dir}? fix:"),
        ({"measure": ["m", "{train_dir}"]}, ["measure"],
         "'sweep.workload.command.measure' uses {train_dir}, but sweep.steps (measure) has no train step"),
        ({"train": ["t", "{train_dir}"]}, ["train"], "but train's own directory is {out_dir}"),
        ({"train": ["t"], "prepare": ["p", "{lr}"]}, ["train"], "'sweep.workload.command.prepare' uses {lr}, but the prepare"),
        ({"train": ["t", "{lr"]}, ["train"], "is not a valid template"),
        ({"train": ["t", "}"]}, ["train"], "write {{ and }} for literal braces"),
        ({"train": ["t", "{lr:.3f}"]}, ["train"], "uses a conversion or format spec"),
        ({"train": ["t", "{}"]}, ["train"], "uses {}, which names no parameter"),
    ],
)
def test_check_names_the_step_and_the_placeholder(command, steps, message):
    with pytest.raises(ConfigError) as err:
        check(wl(command=command), steps)
    assert message in str(err.value)


def test_check_ignores_commands_of_steps_not_run():
    check(wl(command={"train": ["t", "{lr}"], "measure": ["m", "{nope}"]}), ["train"])


def test_check_refuses_missing_sources_reserved_names_bad_hydra_keys_and_outside_metrics(cwd):
    with pytest.raises(ConfigError, match=r"'sweep.workload.sources.eval' lists 'eval_cli.py', which does not exist"):
        check(wl(command={"train": ["t"]}, sources={"eval": ["eval_cli.py"]}))
    with pytest.raises(ConfigError, match=r"'sweep.workload.sources' lists 'src/'"):
        check(wl(command={"train": ["t"]}, sources=["src/"]))
    with pytest.raises(ConfigError, match="the parameter 'out_dir' has the name of a step directory"):
        check(wl(command={"train": ["t"]}), params=("out_dir", "seed"))
    with pytest.raises(ConfigError, match="'bad key' is not a Hydra config key"):
        check(wl(command={"train": ["t"]}, args="hydra"), params=("bad key", "seed"))
    with pytest.raises(ConfigError, match="is a file inside each step's"):
        check(wl(command={"train": ["t"]}, metrics="../m.json"))


def test_source_files_per_step_expand_directories_and_include_the_scripts_run(cwd):
    for rel in ["train_cli.py", "eval_cli.py", "src/a.py", "src/sub/b.txt", "src/__pycache__/a.cpython-311.pyc",
                "src/c.pyc", "src/.git/HEAD", "conf/c.yaml"]:
        (cwd / rel).parent.mkdir(parents=True, exist_ok=True)
        (cwd / rel).write_text("x")
    per_step = wl(command={"train": ["python", "train_cli.py", "--out", "{out_dir}"],
                           "eval": ["python", "eval_cli.py", "{out_dir}.py"]},
                  sources={"train": ["src"], "eval": ["conf"]})
    assert cw.source_files(per_step, "train") == ["src/a.py", "src/sub/b.txt", "train_cli.py"]
    assert cw.source_files(per_step, "eval") == ["conf/c.yaml", "eval_cli.py"]
    shared = wl(command={"train": ["python", "train_cli.py"], "eval": ["python", "-m", "pkg.eval"]},
                sources=["conf", "eval_cli.py"])
    assert cw.source_files(shared, "train") == ["conf/c.yaml", "eval_cli.py", "train_cli.py"]
    assert cw.source_files(shared, "eval") == ["conf/c.yaml", "eval_cli.py"]


# --------------------------------------------------------------------------- metrics


def test_stdout_metrics_parse_numbers_keep_strings_and_take_the_last_value():
    lines = ["epoch 1: loss 2.0", "loss: 0.5", "acc=0.9", "steps = 100", "lr: -1e-3", "name: run a",
             "loss: 0.25", "[2026-01-01 12:00][INFO] - accuracy: 3", "model.width: 64", "empty:", "n: .5"]
    assert cw.parse_stdout_metrics(lines) == {
        "loss": 0.25, "acc": 0.9, "steps": 100, "lr": -0.001, "name": "run a", "model.width": 64, "n": 0.5,
    }


def test_stdout_metrics_from_a_real_command_and_output_teed_into_the_log(cwd):
    s = script(cwd / "s.py", """\
        import sys
        print("starting"); print("accuracy: 0.75"); print("note=fine")
        print("warning: not a metric", file=sys.stderr)
    """)
    log = Log()
    m = train(wl(command={"train": ["python", s]}, metrics="stdout"), {"seed": 0}, cwd, log=log)
    assert m == {"accuracy": 0.75, "note": "fine"}
    assert {"starting", "accuracy: 0.75", "warning: not a metric"} <= set(log)


def test_a_metrics_file_with_nested_objects_becomes_dotted_names(cwd):
    s = script(cwd / "s.py", """\
        import json, sys
        json.dump({"acc": 0.9, "per_class": {"a": 1, "b": {"c": 2}}, "hist": [1, 2]}, open(sys.argv[1] + "/m.json", "w"))
    """)
    m = train(wl(command={"train": ["python", s, "{out_dir}"]}, metrics="m.json"), {"seed": 0}, cwd)
    assert m == {"acc": 0.9, "per_class.a": 1, "per_class.b.c": 2, "hist": [1, 2]}


@pytest.mark.parametrize(
    "body, metrics, message",
    [
        ("pass", "metrics.json",
         "fail.py exited 0 but wrote no metrics.json in results/trials/t1/train (fix: write a JSON object"),
        ("open(sys.argv[1] + '/metrics.json', 'w').write('{\"acc\": ')", "metrics.json",
         "fail.py exited 0 but results/trials/t1/train/metrics.json is not valid JSON"),
        ("open(sys.argv[1] + '/metrics.json', 'w').write('[1, 2]')", "metrics.json",
         "fail.py exited 0 but results/trials/t1/train/metrics.json holds a list, not a JSON object"),
        ("open(sys.argv[1] + '/metrics.json', 'w').write('{\"loss\": NaN}')", "metrics.json",
         "fail.py reported loss = nan: a diverged or broken run is a failed trial"),
        ("print('working...')", "stdout", "fail.py exited 0 but printed no metrics on stdout"),
        ("print('loss: nan')", "stdout", "fail.py reported loss = nan"),
    ],
)
def test_exit_0_without_usable_metrics_fails_with_a_clear_message(cwd, body, metrics, message):
    s = script(cwd / "fail.py", f"import sys\n{body}\n")
    with pytest.raises(cw.MetricsMissing) as err:
        train(wl(command={"train": ["python", s, "{out_dir}"]}, metrics=metrics), {"seed": 0}, cwd)
    assert str(err.value).startswith(message), str(err.value)


def test_a_metrics_file_from_an_earlier_attempt_does_not_count(cwd):
    out = cwd / "results/trials/t1/train"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text('{"acc": 1.0}')
    s = script(cwd / "s.py", "pass\n")
    with pytest.raises(cw.MetricsMissing, match="s.py exited 0 but wrote no metrics.json"):
        train(wl(command={"train": ["python", s]}), {"seed": 0}, cwd)


# --------------------------------------------------------------------------- failures


def test_a_crash_reports_the_exit_status_and_the_last_output(cwd):
    s = script(cwd / "crash.py", """\
        print("loading data")
        raise ValueError("bad learning rate")
    """)
    with pytest.raises(cw.CommandFailed) as err:
        train(wl(command={"train": ["python", s]}), {"seed": 0}, cwd)
    msg = str(err.value)
    assert msg.startswith("crash.py exited with status 1 after ")
    assert "loading data" in msg and "ValueError: bad learning rate" in msg


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGSEGV])
def test_death_by_signal_names_the_signal(cwd, sig):
    s = script(cwd / "die.py", f"import os\nprint('about to die', flush=True)\nos.kill(os.getpid(), {int(sig)})\n")
    with pytest.raises(cw.CommandFailed) as err:
        train(wl(command={"train": ["python", s]}), {"seed": 0}, cwd)
    assert str(err.value).startswith(f"die.py was killed by {sig.name}")
    assert "about to die" in str(err.value)


def test_a_command_that_cannot_start_says_so(cwd):
    with pytest.raises(cw.CommandFailed, match="cannot start 'no-such-program-x': No such file"):
        train(wl(command={"train": ["no-such-program-x"]}), {"seed": 0}, cwd)


def test_python_is_the_interpreter_running_the_workflow_even_when_not_on_path(cwd, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    m = train(wl(command={"train": ["python", "-c", "import sys; print('exe:', sys.prefix)"]}, metrics="stdout"),
              {"seed": 0}, cwd)
    assert m["exe"] == sys.prefix


def test_a_background_grandchild_holding_the_output_does_not_hold_the_step(cwd):
    s = script(cwd / "bg.py", """\
        import subprocess, sys
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        open("bg.pid", "w").write(str(p.pid))
        print("acc: 1")
    """)
    log = Log()
    try:
        m = train(wl(command={"train": ["python", s]}, metrics="stdout"), {"seed": 0}, cwd, log=log)
        # the step returned while the grandchild still runs (and holds the pipe): it did not wait
        # for it; a step that did would hang here for the grandchild's 300 s (pytest's timeout)
        assert _alive(int((cwd / "bg.pid").read_text()))
    finally:
        os.kill(int((cwd / "bg.pid").read_text()), signal.SIGKILL)
    assert m == {"acc": 1}
    assert any("a process it started still holds its output; not waiting for it" in line for line in log), log


STEP_DRIVER = """\
    import sys
    from pathlib import Path
    from snakesweep.config import CommandWorkload
    from snakesweep.workloads.command import run_train
    w = CommandWorkload(command={"train": ["python", "-c", "import os, time; open('cmd.pid', 'w').write(str(os.getpid())); time.sleep(60)"]})
    run_train(w, {"seed": 0}, out_dir=Path("o"), data_dir=Path("d"), trial="t", device="cpu", log=print)
"""


def _wait_for(path: Path, timeout: float = 20) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def _alive(pid: int) -> bool:
    """Running now: neither gone nor a zombie (dead, not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _gone(pid: int, timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux")
@pytest.mark.parametrize("how", ["group", "step-only"])
def test_the_command_dies_with_its_step(cwd, how):
    """The supervisor's timeout kills the step's process group (the command is in it); a step killed
    alone (SIGKILL, e.g. by the OOM killer) takes its command along (PR_SET_PDEATHSIG)."""
    driver = script(cwd / "driver.py", STEP_DRIVER)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    step = subprocess.Popen([sys.executable, driver], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid = _wait_for(cwd / "cmd.pid")
        assert os.getpgid(pid) == step.pid  # in the step's group, not a session of its own
        if how == "group":
            os.killpg(step.pid, signal.SIGTERM)
        else:
            os.kill(step.pid, signal.SIGKILL)
        step.wait(10)
        assert _gone(pid), "the command outlived its step"
    finally:
        try:
            os.killpg(step.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- measurement

MEASURED = """\
    import json, subprocess, sys, time
    blob = bytearray(60 * 2**20)                       # 60 MB in this process...
    for i in range(0, len(blob), 4096):
        blob[i] = 1
    child = subprocess.Popen([sys.executable, "child.py"])
    child.wait()                                        # ...and 50 MB in a child at the same time
    json.dump({"latency_ms_p50": 1.5, "window_s": 123.0}, open(sys.argv[1] + "/metrics.json", "w"))
"""
CHILD = """\
    import time
    from pathlib import Path
    b = bytearray(50 * 2**20)
    b[::4096] = b"x" * len(b[::4096])
    time.sleep(0.6)
    Path("ready").touch()
    end = time.monotonic() + 120  # held until a read of the sampler has seen it (the `sampled` fixture)
    while not Path("release").exists():
        assert time.monotonic() < end, "the sampler never read the tree while this process was alive"
        time.sleep(0.01)
"""


@pytest.fixture
def sampled(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real TreeSampler, told on: after a read that began once `ready` existed in `cwd` and gave
    a sample, it writes `release` there. A command that touches `ready` once it is in the state
    to be measured and then waits for `release` is read in that state, however loaded the machine."""
    read = cw.TreeSampler.sample

    def sample(self: cw.TreeSampler, pid: int) -> None:
        ready = (cwd / "ready").exists()  # before the read: the read sees what `ready` announced
        before = self.samples
        read(self, pid)
        if ready and self.samples > before:
            (cwd / "release").touch()

    monkeypatch.setattr(cw.TreeSampler, "sample", sample)
    return cwd


def test_measuring_a_command_records_its_tree_window_memory_and_energy_honestly(sampled):
    cwd = sampled
    script(cwd / "child.py", CHILD)
    s = script(cwd / "infer.py", MEASURED)
    w = wl(command={"train": ["t"], "measure": ["python", s, "{out_dir}"]})
    settings = MeasureSettings(min_window_s=0, cooldown_s=0.2, sample_interval_s=0.05)
    log = Log()
    t0 = time.perf_counter()
    m = cw.run_measure(w, {"seed": 0}, out_dir=Path("results/trials/t1/measure"),
                       train_dir=Path("results/trials/t1/train"), data_dir=Path("d"), trial="t1", device="cpu",
                       settings=settings, log=log)
    total = time.perf_counter() - t0
    assert "cooldown: 0.2 s" in log
    assert m["window_includes_startup"] is True and "start-up" in m["window_note"]
    assert 0.6 < m["window_s"] < total - 0.2  # the child's sleep is inside; the cooldown is not
    assert m["cpu_time_s"] > 0
    # tree: 60 + 50 MB at once (plus two interpreters); never the launcher's memory (this pytest
    # process holds hundreds of MB, which wait4's ru_maxrss would have carried into the child)
    assert 110 <= m["peak_mem_mb"] < 200
    assert m["max_processes"] == 2
    # the command's own metrics kept under their names; a clash with a measured key is prefixed
    assert m["latency_ms_p50"] == 1.5 and m["command.window_s"] == 123.0 and m["window_s"] != 123.0
    assert "latency_ms_p95" not in m and "throughput_sps" not in m  # nothing we did not measure
    meter = open_meter("cpu")
    if isinstance(meter, UnavailableMeter):  # no readable RAPL (this CPU box: no /sys/class/powercap)
        assert m["energy_j"] is None and m["energy_j_net"] is None
        assert m["energy_source"] == f"unavailable: {meter.reason}"
    else:
        assert m["energy_source"] == "rapl" and m["energy_j"] > 0
    assert m["flag_short_window"] is False and m["flag_gpu_shared"] is None and m["temp_start_c"] is None
    json.dumps(m, allow_nan=False)  # the record is writable as it is


def test_measure_needs_no_metrics_but_a_failing_command_fails_it(sampled):
    cwd = sampled
    # alive until sampled (a command that exits before the first sample has no peak: None)
    ok = script(cwd / "ok.py", """\
        import time
        from pathlib import Path
        Path("ready").touch()
        end = time.monotonic() + 120
        while not Path("release").exists():
            assert time.monotonic() < end, "the sampler never read this process"
            time.sleep(0.01)
        print('done')
    """)
    settings = MeasureSettings(min_window_s=120)  # far above the window, however slow the machine
    kw = dict(out_dir=Path("m"), train_dir=None, data_dir=Path("d"), trial="t1", device="cpu", settings=settings, log=Log())
    m = cw.run_measure(wl(command={"measure": ["python", ok]}), {"seed": 0}, **kw)
    assert m["flag_short_window"] is True and "< min_window_s 120" in m["flag_detail"]
    assert m["peak_mem_mb"] > 0
    bad = script(cwd / "bad.py", "raise SystemExit(3)\n")
    with pytest.raises(cw.CommandFailed, match="bad.py exited with status 3"):
        cw.run_measure(wl(command={"measure": ["python", bad]}), {"seed": 0}, **kw)


def test_prepare_runs_once_with_the_data_dir_only(cwd):
    s = script(cwd / "prep.py", "import sys, pathlib\npathlib.Path(sys.argv[1], 'ready').write_text('1')\n")
    cw.run_prepare(wl(command={"prepare": ["python", s, "{data_dir}"], "train": ["t"]}, args="flags"),
                   data_dir=Path("results/data/k"), log=Log())
    assert (cwd / "results/data/k/ready").read_text() == "1"
    cw.run_prepare(wl(command={"train": ["t"]}), data_dir=Path("x"), log=Log())  # no prepare: nothing
    assert not (cwd / "x").exists()


def test_an_exited_unreaped_command_is_no_rss_sample():
    """A command that exits before the sampler looks leaves a zombie (RSS 0): that is no sample, so
    peak_mem_mb is None rather than a measured-looking 0.0."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sampler = cw.TreeSampler(0.1)
        sampler.sample(pid)
        assert sampler.samples == 0 and sampler.peak_mb == 0.0
        sampler.sample(os.getpid())  # a live process is a sample
        assert sampler.samples == 1 and sampler.peak_mb > 0
    finally:
        os.waitpid(pid, 0)


SHORT_PEAK_DRIVER = """\
    import json, sys
    from pathlib import Path
    from snakesweep.config import MeasureSettings, CommandWorkload
    from snakesweep.workloads.command import run_measure
    alloc = "b = bytearray(100 * 2**20); b[::4096] = b'x' * len(b[::4096])"  # 100 MB touched, then exit
    w = CommandWorkload(command={"train": ["t"], "measure": ["python", "-c", alloc]})
    settings = MeasureSettings(min_window_s=0, cooldown_s=0, sample_interval_s=30)
    m = run_measure(w, {"seed": 0}, out_dir=Path("o"), train_dir=None, data_dir=Path("d"), trial="t",
                    device="cpu", settings=settings, log=lambda line: None)
    print(json.dumps({k: m[k] for k in ("peak_mem_mb", "peak_mem_method", "window_s")}))
"""


def test_a_command_shorter_than_the_sampling_interval_has_its_true_peak(cwd):
    """Started from a step-sized process, as the measure step starts it: a command that touches
    100 MB and exits long before the second read (30 s apart) is measured at its kernel peak."""
    driver = script(cwd / "driver.py", SHORT_PEAK_DRIVER)
    out = subprocess.run([sys.executable, driver], cwd=cwd, env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout.splitlines()[-1])
    assert m["window_s"] < 30  # one read at most: the first, at the start
    assert 100 <= m["peak_mem_mb"] < 160, m
    assert "wait4 (ru_maxrss)" in m["peak_mem_method"]


def _done(maxrss_mb: float, launcher_rss_mb: float) -> cw.Completed:
    return cw.Completed(["c"], 0, [], [], 0.1, 0.1, False, maxrss_mb, launcher_rss_mb)


def test_peak_memory_takes_ru_maxrss_only_above_what_the_fork_carries():
    sampled, unsampled = cw.TreeSampler(0.1), cw.TreeSampler(0.1)
    sampled.sample(os.getpid())
    own = sampled.peak_mb
    # a command bigger than its launcher: its exit figure counts, with or without reads
    assert cw.peak_memory(unsampled, _done(500.0, 20.0)) == (500.0, cw.PEAK_MEM_METHODS["exit"])
    assert cw.peak_memory(sampled, _done(own + 100, 20.0)) == (own + 100, cw.PEAK_MEM_METHODS["both"])
    # ru_maxrss at or under the launcher's RSS may be the launcher's own peak: the reads only
    assert cw.peak_memory(sampled, _done(300.0, 300.0)) == (own, cw.PEAK_MEM_METHODS["sampled"])
    # neither: not measured, never a measured-looking 0
    peak, method = cw.peak_memory(unsampled, _done(250.0, 250.0))
    assert peak is None and method.startswith("not measured")
