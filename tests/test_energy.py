"""Energy arithmetic on recorded traces, the RAPL reader on a sysfs-shaped tree, and the NVML paths.

NVML: this CI machine has no NVIDIA driver, so the NVML code paths are exercised with a small fake
pynvml (FakeNvml below: a stand-in for the driver, nothing else is faked). The tests marked
"real NVML" run against the real driver and are skipped where none is present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import wait_for
from snakesweep.energy import (
    NvmlCounterMeter,
    NvmlSampledMeter,
    PowerSampler,
    RaplMeter,
    RaplUnavailable,
    UnavailableMeter,
    _nvml_target,
    counter_delta,
    discover_rapl,
    net_energy_j,
    open_meter,
    open_nvml_gpu,
    read_rapl_uj,
    trapezoid_j,
)

# --------------------------------------------------------------------------- arithmetic

# A recorded GPU power trace (t in s, W), irregular spacing as a loaded sampler thread produces:
# idle, ramp into a kernel, plateau, ramp down.
TRACE = [
    (0.00, 62.0),
    (0.10, 63.0),
    (0.21, 180.0),
    (0.30, 410.0),
    (0.40, 415.0),
    (0.52, 412.0),
    (0.60, 150.0),
    (0.70, 64.0),
]


def _hand_trapezoid(pts):
    return sum((t2 - t1) * (p1 + p2) / 2 for (t1, p1), (t2, p2) in zip(pts, pts[1:]))


def test_trapezoid_recorded_trace_whole_window():
    # Computed by hand: 6.25 + 13.365 + 26.55 + 41.25 + 49.62 + 22.48 + 10.7 = 170.215 J
    assert trapezoid_j(TRACE, 0.0, 0.7) == pytest.approx(170.215, abs=1e-9)
    assert trapezoid_j(TRACE, 0.0, 0.7) == pytest.approx(_hand_trapezoid(TRACE))


def test_trapezoid_interpolates_window_edges():
    # Window [0.35, 0.56]: edges linearly interpolated inside their sample intervals.
    p_035 = 410 + (415 - 410) * 0.5  # 412.5
    p_056 = 412 + (150 - 412) * 0.5  # 281.0
    expected = _hand_trapezoid([(0.35, p_035), (0.40, 415.0), (0.52, 412.0), (0.56, p_056)])
    assert trapezoid_j(TRACE, 0.35, 0.56) == pytest.approx(expected)


def test_trapezoid_exact_for_constant_and_linear_power():
    const = [(i * 0.1, 250.0) for i in range(11)]
    assert trapezoid_j(const, 0.0, 1.0) == pytest.approx(250.0)
    ramp = [(0.0, 0.0), (1.0, 100.0)]
    assert trapezoid_j(ramp, 0.0, 1.0) == pytest.approx(50.0)
    assert trapezoid_j(ramp, 0.25, 0.75) == pytest.approx(25.0)
    assert trapezoid_j(ramp, 0.5, 0.5) == 0.0


def test_trapezoid_refuses_to_extrapolate():
    with pytest.raises(ValueError, match="do not cover"):
        trapezoid_j(TRACE, -0.1, 0.5)
    with pytest.raises(ValueError, match="do not cover"):
        trapezoid_j(TRACE, 0.1, 0.8)
    with pytest.raises(ValueError, match="no power samples"):
        trapezoid_j([], 0.0, 1.0)
    with pytest.raises(ValueError, match="before its start"):
        trapezoid_j(TRACE, 0.5, 0.1)


# max_energy_range_uj as read on a Xeon package zone
XEON_MAX_UJ = 262143328850


def test_counter_delta_plain_and_wrapped():
    assert counter_delta(1_000, 5_500, XEON_MAX_UJ) == 4_500
    # recorded pair around a wrap: 262143000000 -> 1200000 (= 328850 uJ to the top, then 1.2 J)
    assert counter_delta(262_143_000_000, 1_200_000, XEON_MAX_UJ) == 328_850 + 1_200_000
    with pytest.raises(ValueError, match="range is unknown"):
        counter_delta(10, 5, None)


def test_baseline_subtraction():
    # 180 J gross over 4 s with the card idling at 25 W: 80 J are idle, 100 J are the work.
    assert net_energy_j(180.0, 25.0, 4.0) == pytest.approx(80.0)
    # noise can make net negative; it is reported, not clamped
    assert net_energy_j(10.0, 5.0, 3.0) == pytest.approx(-5.0)


# --------------------------------------------------------------------------- RAPL on a built tree


def make_zone(root: Path, key: str, name: str | None, energy_uj: int | None, max_uj: int | None = XEON_MAX_UJ):
    z = root / key
    z.mkdir(parents=True)
    if name is not None:
        (z / "name").write_text(name + "\n")
    if energy_uj is not None:
        (z / "energy_uj").write_text(f"{energy_uj}\n")
    if max_uj is not None:
        (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


def build_rapl_tree(root: Path, pkg_uj: int = 5_000_000, dram_uj: int = 700_000) -> Path:
    """Laid out like /sys/class/powercap on a one-socket Intel machine."""
    (root / "intel-rapl").mkdir(parents=True)  # the control type: no zone, no name
    (root / "intel-rapl" / "enabled").write_text("1\n")
    make_zone(root, "intel-rapl:0", "package-0", pkg_uj)
    make_zone(root, "intel-rapl:0:0", "core", 3_000_000)
    make_zone(root, "intel-rapl:0:1", "dram", dram_uj, 65712999613)
    make_zone(root, "intel-rapl:1", "psys", 9_000_000)
    return root


def set_uj(root: Path, key: str, value: int) -> None:
    (root / key / "energy_uj").write_text(f"{value}\n")


def test_discover_rapl_counts_package_and_dram_only(tmp_path):
    root = build_rapl_tree(tmp_path / "powercap")
    doms = discover_rapl(root)
    assert [(d.key, d.name) for d in doms] == [("intel-rapl:0", "package-0"), ("intel-rapl:0:1", "dram")]
    assert doms[0].max_range_uj == XEON_MAX_UJ
    assert read_rapl_uj(doms) == {"package-0@intel-rapl:0": 5_000_000, "dram@intel-rapl:0:1": 700_000}


def test_rapl_meter_window_with_wraparound(tmp_path):
    root = build_rapl_tree(tmp_path / "powercap", pkg_uj=XEON_MAX_UJ - 2_000_000)
    meter = open_meter("cpu", rapl_root=root)
    assert isinstance(meter, RaplMeter)
    meter.begin()
    set_uj(root, "intel-rapl:0", 3_000_000)  # wrapped: 2 J to the top + 3 J
    set_uj(root, "intel-rapl:0:1", 700_000 + 1_500_000)  # dram +1.5 J
    set_uj(root, "intel-rapl:0:0", 999_999_999)  # core is inside package: must not count
    r = meter.end()
    assert r.source == "rapl"
    assert r.domains_j == {"package-0@intel-rapl:0": pytest.approx(5.0), "dram@intel-rapl:0:1": pytest.approx(1.5)}
    assert r.energy_j == pytest.approx(6.5)
    assert r.window_s > 0 and r.sample_interval_s is None
    assert not r.counter_zero
    assert "package-0@intel-rapl:0=5.000 J" in r.detail


def test_rapl_counter_that_did_not_move_is_flagged_zero(tmp_path):
    meter = open_meter("cpu", rapl_root=build_rapl_tree(tmp_path / "pc"))
    meter.begin()
    r = meter.end()
    assert r.energy_j == 0.0 and r.counter_zero


def test_rapl_two_sockets_summed_and_mmio_duplicate_ignored(tmp_path):
    root = tmp_path / "pc"
    make_zone(root, "intel-rapl:0", "package-0", 100)
    make_zone(root, "intel-rapl:1", "package-1", 200)
    make_zone(root, "intel-rapl-mmio:0", "package-0", 100)  # same package through MMIO
    meter = open_meter("cpu", rapl_root=root)
    meter.begin()
    set_uj(root, "intel-rapl:0", 1_000_100)
    set_uj(root, "intel-rapl:1", 2_000_200)
    assert meter.end().energy_j == pytest.approx(3.0)
    # a machine exposing only the MMIO interface still gets its package
    root2 = tmp_path / "pc2"
    make_zone(root2, "intel-rapl-mmio:0", "package-0", 100)
    assert [d.key for d in discover_rapl(root2)] == ["intel-rapl-mmio:0"]


def test_rapl_missing_or_empty_gives_reason(tmp_path):
    with pytest.raises(RaplUnavailable, match="does not exist"):
        discover_rapl(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RaplUnavailable, match="no intel-rapl zones"):
        discover_rapl(tmp_path / "empty")
    make_zone(tmp_path / "coreonly", "intel-rapl:0:0", "core", 1)
    with pytest.raises(RaplUnavailable, match="no RAPL package or dram"):
        discover_rapl(tmp_path / "coreonly")
    m = open_meter("cpu", rapl_root=tmp_path / "nope")
    assert isinstance(m, UnavailableMeter) and not m.available
    m.begin()
    r = m.end()
    assert r.energy_j is None
    assert r.source.startswith("unavailable: no RAPL:")


def test_rapl_unreadable_path_directory_where_file_expected(tmp_path):
    root = tmp_path / "pc"
    z = make_zone(root, "intel-rapl:0", "package-0", None)
    (z / "energy_uj").mkdir()  # an unreadable "file": EISDIR, a read error root cannot bypass
    with pytest.raises(RaplUnavailable, match=r"cannot read .*energy_uj: Is a directory"):
        read_rapl_uj(discover_rapl(root))
    m = open_meter("cpu", rapl_root=root)
    assert isinstance(m, UnavailableMeter)
    assert "Is a directory" in m.reason


# Runs in a separate interpreter as an unprivileged user: energy.py's source arrives on stdin (it needs
# only the standard library), so the child depends on neither the repository's nor the venv's modes.
_CHILD = """
import sys, types
from pathlib import Path
mod = types.ModuleType("energy_child")
sys.modules["energy_child"] = mod
exec(compile(sys.stdin.read(), "snakesweep/energy.py", "exec"), mod.__dict__)
m = mod.open_meter("cpu", rapl_root=Path("."))
print("RESULT|" + type(m).__name__ + "|" + getattr(m, "reason", ""))
"""


def _probe_as_nobody(root: Path) -> tuple[str, str] | None:
    """Open a RAPL meter on ``root`` from a child process running as uid/gid 65534 (not root).

    Root ignores file modes, so a chmod 000 file is only unreadable for a real unprivileged user.
    The child starts in the tree (cwd) and uses relative paths: resolving them needs no search
    permission on pytest's private (0700) ancestors, so the only mode in play is energy_uj's.
    Returns (meter class, reason), or None if no unprivileged interpreter can be started here.
    """
    src = (Path(__file__).resolve().parents[1] / "snakesweep" / "energy.py").read_text()
    # The test's own interpreter may live where uid 65534 cannot reach it (e.g. under /root); any
    # Python >= 3.8 runs energy.py, so try the system one too.
    candidates = dict.fromkeys(
        c for c in (sys.executable, getattr(sys, "_base_executable", None), "/usr/bin/python3", shutil.which("python3")) if c
    )
    for exe in candidates:
        try:
            proc = subprocess.run(
                [exe, "-I", "-c", _CHILD],
                input=src, cwd=root, user=65534, group=65534, extra_groups=[],
                capture_output=True, text=True, timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT|"):
                _, kind, reason = line.split("|", 2)
                return kind, reason
        if "Permission denied" not in proc.stderr:
            raise AssertionError(f"child failed under {exe}: rc={proc.returncode}\n{proc.stderr[-2000:]}")
    return None


def test_rapl_permission_denied_is_a_reason_not_a_number(tmp_path):
    root = build_rapl_tree(tmp_path / "pc")
    os.chmod(root / "intel-rapl:0" / "energy_uj", 0o000)
    if os.geteuid() != 0:
        m = open_meter("cpu", rapl_root=root)
        assert isinstance(m, UnavailableMeter)
        assert "permission denied" in m.reason
        return
    # As root: the reader runs in a child process that runs as an unprivileged uid, for real.
    got = _probe_as_nobody(root)
    if got is None:
        pytest.skip("running as root and no interpreter can be started as uid 65534 to make the denial real")
    kind, reason = got
    assert kind == "UnavailableMeter", got
    assert reason.startswith("permission denied reading intel-rapl:0/energy_uj"), reason
    # and the same tree is readable by root, so the denial came from the mode, not the tree
    assert isinstance(open_meter("cpu", rapl_root=root), RaplMeter)


# --------------------------------------------------------------------------- sampler thread




def test_power_sampler_integrates_real_thread_samples():
    s = PowerSampler(lambda: 40.0, 0.01)
    t0 = s.start()
    wait_for(lambda: len(s.samples) >= 11, "the sampler thread to take 10 samples after the start sample", 60, 0.005)
    samples = s.stop()
    t1 = samples[-1][0]
    assert samples[0][0] == t0
    assert len(samples) >= 12  # the start sample, >= 10 from the thread, the stop sample
    # paced, not spinning: the thread's k-th sample waits until at least k intervals after t0
    assert len(samples) - 2 <= (t1 - t0) / 0.01 + 1
    ts = [t for t, _ in samples]
    assert ts == sorted(ts)
    assert trapezoid_j(samples, t0, t1) == pytest.approx(40.0 * (t1 - t0))


def test_power_sampler_reports_read_failure():
    calls = {"n": 0}

    def flaky() -> float:
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError("sensor went away")
        return 10.0

    s = PowerSampler(flaky, 0.005)
    s.start()
    wait_for(lambda: s.error is not None, "the sampler thread to reach the failing third read", 60, 0.005)
    with pytest.raises(RuntimeError, match="sensor went away") as failed:
        s.stop()
    assert isinstance(failed.value.__cause__, OSError)
    assert calls["n"] == 3  # the thread stopped at the first failure and stop() read no more


# --------------------------------------------------------------------------- NVML


class FakeNVMLError(Exception):
    pass


class FakeNvml:
    """Stand-in for the pynvml module where no NVIDIA driver exists (this CI machine).

    Its energy counter and power follow real elapsed time at ``watts``, so meters that read it
    measure a known power over a real window.
    """

    NVMLError = FakeNVMLError
    NVML_TEMPERATURE_GPU = 0
    NVML_PERF_POLICY_POWER = 0
    NVML_PERF_POLICY_THERMAL = 1
    NVML_FI_DEV_POWER_INSTANT = 186

    def __init__(self, watts=300.0, counter=True, power=True, instant=False, init_ok=True):
        self.watts = watts
        self.counter = counter
        self.power = power
        self.instant = instant
        self.init_ok = init_ok
        self.t0 = time.perf_counter()
        self.inits = 0
        self.shutdowns = 0
        self.pids = [os.getpid()]
        self.power_reads = 0  # nvmlDeviceGetPowerUsage calls: lets a test poll for the sampler's reads

    def nvmlInit(self):
        if not self.init_ok:
            raise FakeNVMLError("NVML Shared Library Not Found")
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, i):
        if i != 0:
            raise FakeNVMLError("Invalid Argument")
        return "h0"

    def nvmlDeviceGetHandleByUUID(self, u):
        return "h0"

    def nvmlDeviceGetName(self, h):
        return b"Fake GPU 80GB"

    def nvmlSystemGetDriverVersion(self):
        return "999.1"

    def nvmlSystemGetNVMLVersion(self):
        return b"13.999.1"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.counter:
            raise FakeNVMLError("Not Supported")
        return int(1_000_000 + self.watts * (time.perf_counter() - self.t0) * 1000)

    def nvmlDeviceGetPowerUsage(self, h):
        self.power_reads += 1
        if not self.power:
            raise FakeNVMLError("Not Supported")
        return int(self.watts * 1000)

    def nvmlDeviceGetFieldValues(self, h, ids):
        if not self.instant:
            raise FakeNVMLError("Not Supported")
        return [SimpleNamespace(nvmlReturn=0, value=SimpleNamespace(uiVal=int(self.watts * 1000)))]

    def nvmlDeviceGetTemperature(self, h, sensor):
        return 41

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=p) for p in self.pids]

    def nvmlDeviceGetViolationStatus(self, h, pol):
        return SimpleNamespace(referenceTime=0, violationTime=0)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return 0


def test_nvml_counter_meter_measures_known_power():
    nv = FakeNvml(watts=300.0)
    gpu, reason = open_nvml_gpu(0, nvml=nv)
    assert reason is None and gpu.name == "Fake GPU 80GB"
    assert gpu.driver_version == "999.1" and gpu.nvml_version == "13.999.1"
    m = open_meter("cuda", gpu=gpu)
    assert isinstance(m, NvmlCounterMeter)
    a0 = time.perf_counter()
    m.begin()
    a1 = time.perf_counter()
    time.sleep(0.5)  # the workload: a window of at least 0.5 s
    b0 = time.perf_counter()
    r = m.end()
    b1 = time.perf_counter()
    assert r.source == "nvml_counter" and r.sample_interval_s is None
    # begin() and end() each read the counter and the clock a few statements apart, inside a0..a1 and
    # b0..b1: however long a busy box preempts the thread there, the error is bounded by what was timed
    assert 0.5 <= b0 - a1 <= r.window_s <= b1 - a0
    assert 300.0 * (b0 - a1) - 0.001 <= r.energy_j <= 300.0 * (b1 - a0) + 0.001  # +-1 mJ: int counter
    slack_j = 300.0 * ((a1 - a0) + (b1 - b0)) + 0.002
    assert r.energy_j == pytest.approx(300.0 * r.window_s, abs=slack_j)
    assert "Fake GPU 80GB" in r.detail and "driver 999.1" in r.detail
    gpu.close()
    gpu.close()
    assert nv.shutdowns == 1 == nv.inits


def test_nvml_sampled_meter_when_counter_unsupported():
    nv = FakeNvml(watts=120.0, counter=False)
    gpu, _ = open_nvml_gpu(0, nvml=nv)
    assert gpu.power_api == "nvmlDeviceGetPowerUsage"
    m = open_meter("cuda", 0.02, gpu=gpu)
    assert isinstance(m, NvmlSampledMeter)
    reads0 = nv.power_reads
    m.begin()
    wait_for(lambda: nv.power_reads >= reads0 + 3, "the start sample and 2 reads by the sampler thread", 60, 0.005)
    r = m.end()
    assert r.source == "nvml_sampled" and r.sample_interval_s == 0.02
    assert r.n_samples >= 4
    assert r.n_samples == nv.power_reads - reads0  # every read is a sample: start, thread, stop
    assert r.n_samples - 2 <= r.window_s / 0.02 + 1  # paced at the interval, not spinning
    assert r.energy_j == pytest.approx(120.0 * r.window_s, rel=1e-9)
    assert "sampled every 0.02 s" in r.detail


def test_nvml_prefers_instant_power_field():
    gpu, _ = open_nvml_gpu(0, nvml=FakeNvml(watts=90.0, instant=True))
    assert gpu.power_api == "field NVML_FI_DEV_POWER_INSTANT"
    assert gpu.power_w() == pytest.approx(90.0)


def test_nvml_nothing_readable_gives_reasons():
    gpu, _ = open_nvml_gpu(0, nvml=FakeNvml(counter=False, power=False))
    m = open_meter("cuda", gpu=gpu)
    assert isinstance(m, UnavailableMeter)
    assert "no energy counter" in m.reason and "no power reading" in m.reason
    m.begin()
    r = m.end()
    assert r.energy_j is None and r.source.startswith("unavailable: Fake GPU 80GB")


def test_nvml_init_failure_and_bad_index():
    gpu, reason = open_nvml_gpu(0, nvml=FakeNvml(init_ok=False))
    assert gpu is None and "NVML cannot start" in reason
    nv = FakeNvml()
    gpu, reason = open_nvml_gpu(3, nvml=nv)
    assert gpu is None and "cannot open CUDA device 3" in reason
    assert nv.inits == nv.shutdowns == 1
    m = open_meter("cuda", gpu=None, gpu_reason=reason)
    assert isinstance(m, UnavailableMeter) and "cannot open CUDA device 3" in m.reason


def test_nvml_target_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert _nvml_target(1, None) == ("index", 1)
    assert _nvml_target(0, "8d7b0c1e-aaaa") == ("uuid", "GPU-8d7b0c1e-aaaa")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert _nvml_target(1, None) == ("index", 3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc,GPU-def")
    assert _nvml_target(1, None) == ("uuid", "GPU-def")
    with pytest.raises(ValueError, match="not among"):
        _nvml_target(2, None)


def _real_nvml():
    gpu, reason = open_nvml_gpu(0)
    return gpu, reason


def test_real_nvml_opens_or_says_why():
    """Real pynvml: on a machine without a driver it must fail with a reason, not an exception."""
    gpu, reason = _real_nvml()
    if gpu is None:
        assert reason and ("NVML" in reason or "pynvml" in reason)
    else:
        assert gpu.name and reason is None
        gpu.close()


def test_real_nvml_counter_and_sampler_agree_at_idle():
    gpu, reason = _real_nvml()
    if gpu is None:
        pytest.skip(f"real NVML not available: {reason}")
    try:
        if gpu.energy_counter_reason() is not None or gpu.power_reason() is not None:
            pytest.skip("this GPU lacks the energy counter or power reading")
        counter = NvmlCounterMeter(gpu)
        sampled = NvmlSampledMeter(gpu, 0.05)
        counter.begin()
        sampled.begin()
        time.sleep(2.0)
        rs = sampled.end()
        rc = counter.end()
        assert rc.energy_j > 0 and rs.energy_j > 0
        assert 5 < rc.mean_power_w < 1500  # an idle or busy datacenter card, not garbage
        assert rs.energy_j == pytest.approx(rc.energy_j, rel=0.25)  # idle, 2 s: coarse agreement
        assert gpu.temperature_c() is not None
    finally:
        gpu.close()


def test_sampler_does_not_keep_running_after_close():
    nv = FakeNvml(counter=False)
    gpu, _ = open_nvml_gpu(0, nvml=nv)
    m = open_meter("cuda", 0.01, gpu=gpu)
    before = threading.active_count()
    m.begin()
    assert threading.active_count() == before + 1
    m.close()  # abandoned window (e.g. the workload raised)
    assert threading.active_count() == before
