"""Energy of a timed window, from the best source this machine really offers, or an honest "unavailable".

Sources, tried in this order for the device being measured:

1. ``nvml_counter``: NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since
   driver load), read before and after the window. Exact up to the counter's update granularity.
2. ``nvml_sampled``: GPUs without the counter: NVML power read by a background thread every
   ``sample_interval_s`` and integrated over the window by the trapezoid rule.
3. ``rapl``: CPUs: Linux powercap ``energy_uj`` of the package and dram domains, wrap-around
   corrected with ``max_energy_range_uj``.
4. ``unavailable: <reason>``: nothing readable; the energy is None, never a guess (no TDP x time).

A GPU run is measured only by NVML (RAPL sees the CPU, not the card); a CPU run only by RAPL.
``pynvml`` (from the nvidia-ml-py distribution) is imported lazily, so CPU runs neither pay for it
nor need a driver.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_RAPL_ROOT = Path("/sys/class/powercap")

# Clock-event bits meaning "slowed by power or heat" (nvmlClocksEventReason*); idle, app-clock and
# sync-boost reasons are not throttling the measurement.
THROTTLE_BITS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
}


# --------------------------------------------------------------------------- pure arithmetic


def trapezoid_j(samples: Sequence[tuple[float, float]], t0: float, t1: float) -> float:
    """Integrate (time_s, power_W) samples over [t0, t1] with the trapezoid rule.

    The window edges are linearly interpolated between neighbouring samples. The samples must cover
    the window: extrapolating beyond the first or last sample would be inventing power we did not see.
    """
    if t1 < t0:
        raise ValueError(f"window end {t1} is before its start {t0}")
    pts = sorted(samples)
    if not pts:
        raise ValueError("no power samples")
    if pts[0][0] > t0 or pts[-1][0] < t1:
        raise ValueError(
            f"power samples span [{pts[0][0]:.6f}, {pts[-1][0]:.6f}] and do not cover the "
            f"window [{t0:.6f}, {t1:.6f}]"
        )
    if t1 == t0:
        return 0.0

    def at(t: float) -> float:
        for (ta, pa), (tb, pb) in zip(pts, pts[1:]):
            if ta <= t <= tb:
                return pa if tb == ta else pa + (pb - pa) * (t - ta) / (tb - ta)
        return pts[0][1]  # single sample exactly at t

    inner = [(t, p) for t, p in pts if t0 < t < t1]
    seq = [(t0, at(t0)), *inner, (t1, at(t1))]
    return sum((tb - ta) * (pa + pb) / 2.0 for (ta, pa), (tb, pb) in zip(seq, seq[1:]))


def counter_delta(before: int, after: int, max_range: int | None) -> int:
    """Increase of a monotonic counter that restarts from 0 after reaching ``max_range``.

    One wrap at most can be detected between two reads; the RAPL package range is hundreds of kJ,
    i.e. tens of minutes at full load, far longer than a measurement window.
    """
    if after >= before:
        return after - before
    if not max_range:
        raise ValueError(
            f"counter went backwards ({before} -> {after}) and its range is unknown, "
            "so the wrap-around cannot be corrected"
        )
    return after + max_range - before


def net_energy_j(gross_j: float, baseline_power_w: float, window_s: float) -> float:
    """Energy above idle: gross minus baseline power x window. Not clamped: noise may make it < 0."""
    return gross_j - baseline_power_w * window_s


# --------------------------------------------------------------------------- results


@dataclass
class EnergyResult:
    """What one window's measurement produced; energy_j is None whenever nothing was measured."""

    energy_j: float | None
    source: str  # "nvml_counter" | "nvml_sampled" | "rapl" | "unavailable: <reason>"
    detail: str
    window_s: float
    sample_interval_s: float | None = None
    n_samples: int | None = None
    counter_zero: bool = False
    domains_j: dict[str, float] = field(default_factory=dict)

    @property
    def mean_power_w(self) -> float | None:
        if self.energy_j is None or self.window_s <= 0:
            return None
        return self.energy_j / self.window_s


# --------------------------------------------------------------------------- power sampler


class PowerSampler:
    """Reads power on a background thread every ``interval_s`` on the perf_counter clock.

    One sample is taken synchronously at start() and one at stop(), so the samples always cover the
    window between them. The thread sleeps on an Event between reads: it costs the measured loop a
    GIL hand-over per sample and nothing else (see benchmarks/bench_sampler.py).
    """

    def __init__(self, read_w: Callable[[], float], interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("sample interval must be > 0")
        self.read_w = read_w
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self.error: BaseException | None = None
        self.thread_cpu_s = 0.0  # CPU time the thread used: an upper bound on the GIL it took
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        w = float(self.read_w())
        self.samples.append((time.perf_counter(), w))

    def _loop(self) -> None:
        c0 = time.thread_time()
        nxt = time.perf_counter()
        try:
            while True:
                nxt += self.interval_s
                if self._stop.wait(max(0.0, nxt - time.perf_counter())):
                    return
                try:
                    self._sample()
                except BaseException as err:  # keep the first failure; stop() reports it
                    self.error = err
                    return
        finally:
            self.thread_cpu_s = time.thread_time() - c0

    def start(self) -> float:
        """Take the first sample and start the thread; returns the window start time."""
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self.samples = []
        self.error = None
        self._stop.clear()
        self._sample()
        t0 = self.samples[0][0]
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()
        return t0

    def cancel(self) -> None:
        """Stop the thread without a result (the window was abandoned, e.g. fn raised)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def stop(self) -> list[tuple[float, float]]:
        """Stop the thread, take the last sample, return all (t, W) samples; raises a read failure."""
        if self._thread is None:
            raise RuntimeError("sampler not started")
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self.error is not None:
            raise RuntimeError(f"power sampling failed: {self.error}") from self.error
        self._sample()
        return list(self.samples)


# --------------------------------------------------------------------------- NVML


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def import_pynvml() -> Any:
    """Import pynvml only when a GPU is to be measured (CPU runs must work without it)."""
    import pynvml  # noqa: PLC0415  (deliberately lazy)

    return pynvml


class NvmlGpu:
    """One NVIDIA GPU through NVML; optional queries answer None when the card does not support them."""

    def __init__(self, nvml: Any, handle: Any, how: str) -> None:
        self.nvml = nvml
        self.handle = handle
        self.how = how  # how the handle was found, for the record
        self.name = _text(nvml.nvmlDeviceGetName(handle))
        self.driver_version = self._try(lambda: _text(nvml.nvmlSystemGetDriverVersion()))
        self.nvml_version = self._try(lambda: _text(nvml.nvmlSystemGetNVMLVersion()))
        self._closed = False
        # Ampere-and-newer cards (except GA100) answer nvmlDeviceGetPowerUsage with a 1 s average;
        # the instant field is what a sampler should integrate, where the driver offers it.
        self.power_api = "nvmlDeviceGetPowerUsage"
        if self._instant_power_w() is not None:
            self.power_api = "field NVML_FI_DEV_POWER_INSTANT"

    def _try(self, f: Callable[[], Any]) -> Any:
        try:
            return f()
        except self.nvml.NVMLError:
            return None

    def _instant_power_w(self) -> float | None:
        fid = getattr(self.nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if fid is None or not hasattr(self.nvml, "nvmlDeviceGetFieldValues"):
            return None
        try:
            v = self.nvml.nvmlDeviceGetFieldValues(self.handle, [fid])[0]
        except self.nvml.NVMLError:
            return None
        if v.nvmlReturn != 0:
            return None
        mw = v.value.uiVal
        return mw / 1000.0 if mw > 0 else None

    def energy_counter_reason(self) -> str | None:
        """None when the total-energy counter works, else why it does not."""
        try:
            self.energy_mj()
        except self.nvml.NVMLError as err:
            return f"nvmlDeviceGetTotalEnergyConsumption: {err}"
        return None

    def power_reason(self) -> str | None:
        """None when power can be read, else why it cannot."""
        try:
            self.power_w()
        except self.nvml.NVMLError as err:
            return f"{self.power_api}: {err}"
        return None

    def energy_mj(self) -> int:
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def power_w(self) -> float:
        if self.power_api != "nvmlDeviceGetPowerUsage":
            w = self._instant_power_w()
            if w is not None:
                return w
        return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0

    def temperature_c(self) -> float | None:
        return self._try(
            lambda: float(self.nvml.nvmlDeviceGetTemperature(self.handle, self.nvml.NVML_TEMPERATURE_GPU))
        )

    def running_pids(self) -> list[int] | None:
        """PIDs with a compute or graphics context on this GPU (None if NVML cannot list them)."""
        pids: set[int] = set()
        ok = False
        for fname in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            f = getattr(self.nvml, fname, None)
            if f is None:
                continue
            procs = self._try(lambda f=f: f(self.handle))
            if procs is not None:
                ok = True
                pids.update(int(p.pid) for p in procs)
        return sorted(pids) if ok else None

    def violation_ns(self) -> dict[str, int] | None:
        """Cumulative time (ns) clocks were held down by the power and the thermal policy."""
        out = {}
        for key, const in (("power", "NVML_PERF_POLICY_POWER"), ("thermal", "NVML_PERF_POLICY_THERMAL")):
            pol = getattr(self.nvml, const, None)
            if pol is None:
                return None
            v = self._try(lambda pol=pol: self.nvml.nvmlDeviceGetViolationStatus(self.handle, pol))
            if v is None:
                return None
            out[key] = int(v.violationTime)
        return out

    def throttle_reasons(self) -> int | None:
        """Current clock-event reason bits (the 'clocks throttle reasons' of older drivers)."""
        for fname in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
            f = getattr(self.nvml, fname, None)
            if f is not None:
                r = self._try(lambda f=f: int(f(self.handle)))
                if r is not None:
                    return r
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._try(self.nvml.nvmlShutdown)


def _nvml_target(cuda_index: int, uuid: str | None) -> tuple[str, Any]:
    """How to find the NVML device behind CUDA device ``cuda_index`` (NVML ignores CUDA_VISIBLE_DEVICES)."""
    if uuid:
        u = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        return "uuid", u
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip():
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if cuda_index >= len(entries):
            raise ValueError(f"cuda:{cuda_index} is not among CUDA_VISIBLE_DEVICES={visible!r}")
        e = entries[cuda_index]
        if e.startswith(("GPU-", "MIG-")):
            return "uuid", e
        if e.isdigit():
            return "index", int(e)
        raise ValueError(f"cannot map CUDA_VISIBLE_DEVICES entry {e!r} to an NVML device")
    return "index", cuda_index


def open_nvml_gpu(
    cuda_index: int = 0, uuid: str | None = None, nvml: Any = None
) -> tuple[NvmlGpu | None, str | None]:
    """Initialise NVML and open the GPU; returns (gpu, None) or (None, reason it is not readable).

    Prefer passing the CUDA device's ``uuid`` (torch.cuda.get_device_properties(i).uuid): CUDA's
    default device order need not be NVML's PCI order on multi-GPU machines.
    """
    try:
        nvml = nvml if nvml is not None else import_pynvml()
    except ImportError as err:
        return None, f"nvidia-ml-py (module pynvml) is not installed: {err}"
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        return None, f"NVML cannot start (no NVIDIA GPU or driver here?): {err}"
    try:
        kind, key = _nvml_target(cuda_index, uuid)
        if kind == "uuid":
            handle = nvml.nvmlDeviceGetHandleByUUID(key)
        else:
            handle = nvml.nvmlDeviceGetHandleByIndex(key)
        return NvmlGpu(nvml, handle, f"{kind} {key}"), None
    except (nvml.NVMLError, ValueError) as err:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass
        return None, f"NVML cannot open CUDA device {cuda_index}: {err}"


# --------------------------------------------------------------------------- RAPL


@dataclass(frozen=True)
class RaplDomain:
    """One powercap zone we count: a CPU package or its DRAM."""

    key: str  # zone directory name, e.g. "intel-rapl:0"
    name: str  # "package-0", "dram"
    energy_path: Path
    max_range_uj: int | None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.key}"


class RaplUnavailable(Exception):
    """RAPL cannot be read here; the message is the reason recorded in energy_source."""


def _read_int(path: Path) -> int:
    try:
        text = path.read_text()
    except PermissionError:
        raise RaplUnavailable(
            f"permission denied reading {path} (energy_uj is root-only since Linux 5.10; "
            "run as root or grant read access to the powercap files)"
        ) from None
    except OSError as err:
        raise RaplUnavailable(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return int(text.strip())
    except ValueError:
        raise RaplUnavailable(f"{path} does not hold an integer: {text.strip()[:40]!r}") from None


def discover_rapl(root: Path = DEFAULT_RAPL_ROOT) -> list[RaplDomain]:
    """Package and dram zones under a powercap root (flat ``intel-rapl:*`` entries, as sysfs lists them).

    core/uncore are parts of the package and psys overlaps it, so they are not added (no double count);
    the MMIO interface repeats the package, so it is used only when the MSR zones are absent.
    Raises RaplUnavailable with the reason when nothing usable is there.
    """
    root = Path(root)
    if not root.is_dir():
        raise RaplUnavailable(f"no RAPL: {root} does not exist (not Linux, or powercap not exposed here)")
    zones = sorted(p for p in root.glob("intel-rapl:*"))
    if not zones:
        zones = sorted(p for p in root.glob("intel-rapl-mmio:*"))
    if not zones:
        raise RaplUnavailable(f"no RAPL: no intel-rapl zones under {root}")
    out: list[RaplDomain] = []
    seen: set[Path] = set()
    for z in zones:
        real = z.resolve()
        if real in seen:
            continue
        seen.add(real)
        name_file = z / "name"
        try:
            name = name_file.read_text().strip()
        except PermissionError:
            raise RaplUnavailable(f"permission denied reading {name_file}") from None
        except OSError as err:
            raise RaplUnavailable(f"cannot read {name_file}: {err.strerror or err}") from None
        if not (name.startswith("package") or name == "dram"):
            continue
        max_file = z / "max_energy_range_uj"
        max_range = _read_int(max_file) if max_file.exists() else None
        out.append(RaplDomain(z.name, name, z / "energy_uj", max_range))
    if not out:
        raise RaplUnavailable(f"no RAPL package or dram zone under {root}")
    return out


def read_rapl_uj(domains: Sequence[RaplDomain]) -> dict[str, int]:
    """Current energy_uj of each domain (real file reads; raises RaplUnavailable with the reason)."""
    return {d.label: _read_int(d.energy_path) for d in domains}


# --------------------------------------------------------------------------- meters


class EnergyMeter:
    """A window's energy: begin() right before the first timed batch, end() right after the last."""

    method: str = "unavailable"
    sample_interval_s: float | None = None

    def __init__(self) -> None:
        self.device_name: str | None = None
        self.driver_version: str | None = None
        self.nvml_version: str | None = None
        self._t0: float | None = None

    @property
    def available(self) -> bool:
        return True

    def begin(self) -> None:
        raise NotImplementedError

    def end(self) -> EnergyResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the meter holds (NVML stays open while the caller's NvmlGpu is open)."""

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _window(self) -> float:
        if self._t0 is None:
            raise RuntimeError("end() called before begin()")
        w = time.perf_counter() - self._t0
        self._t0 = None
        return w


class UnavailableMeter(EnergyMeter):
    """No readable source: every window reports energy None and the reason."""

    def __init__(self, reason: str, device_name: str | None = None) -> None:
        super().__init__()
        self.reason = reason
        self.device_name = device_name

    @property
    def available(self) -> bool:
        return False

    def begin(self) -> None:
        self._t0 = time.perf_counter()

    def end(self) -> EnergyResult:
        w = self._window()
        return EnergyResult(None, f"unavailable: {self.reason}", self.reason, w)


class _NvmlMeter(EnergyMeter):
    def __init__(self, gpu: NvmlGpu) -> None:
        super().__init__()
        self.gpu = gpu
        self.device_name = gpu.name
        self.driver_version = gpu.driver_version
        self.nvml_version = gpu.nvml_version

    def _who(self) -> str:
        return f"{self.gpu.name} (NVML {self.gpu.how}), driver {self.gpu.driver_version}, NVML {self.gpu.nvml_version}"


class NvmlCounterMeter(_NvmlMeter):
    """NVML total-energy counter (mJ) read at both ends of the window."""

    method = "nvml_counter"

    def begin(self) -> None:
        self._e0 = self.gpu.energy_mj()
        self._t0 = time.perf_counter()

    def end(self) -> EnergyResult:
        e1 = self.gpu.energy_mj()
        w = self._window()
        delta_mj = counter_delta(self._e0, e1, None)
        return EnergyResult(
            energy_j=delta_mj / 1000.0,
            source=self.method,
            detail=f"nvmlDeviceGetTotalEnergyConsumption delta {delta_mj} mJ over {w:.3f} s; {self._who()}",
            window_s=w,
            counter_zero=delta_mj == 0 or e1 == 0,
        )


class NvmlSampledMeter(_NvmlMeter):
    """NVML power sampled on a thread and integrated by the trapezoid rule."""

    method = "nvml_sampled"

    def __init__(self, gpu: NvmlGpu, sample_interval_s: float) -> None:
        super().__init__(gpu)
        self.sample_interval_s = sample_interval_s
        self._sampler = PowerSampler(gpu.power_w, sample_interval_s)

    def begin(self) -> None:
        self._t0 = self._sampler.start()

    def end(self) -> EnergyResult:
        samples = self._sampler.stop()
        t0, t1 = samples[0][0], samples[-1][0]
        self._t0 = None
        e = trapezoid_j(samples, t0, t1)
        return EnergyResult(
            energy_j=e,
            source=self.method,
            detail=(
                f"{self.gpu.power_api} sampled every {self.sample_interval_s} s "
                f"({len(samples)} samples), trapezoid over {t1 - t0:.3f} s; {self._who()}"
            ),
            window_s=t1 - t0,
            sample_interval_s=self.sample_interval_s,
            n_samples=len(samples),
            counter_zero=all(p == 0 for _, p in samples),
        )

    def close(self) -> None:
        self._sampler.cancel()


class RaplMeter(EnergyMeter):
    """Linux powercap RAPL counters (package + dram), wrap-around corrected."""

    method = "rapl"

    def __init__(self, domains: Sequence[RaplDomain], device_name: str | None = None) -> None:
        super().__init__()
        self.domains = list(domains)
        self.device_name = device_name

    def begin(self) -> None:
        self._e0 = read_rapl_uj(self.domains)
        self._t0 = time.perf_counter()

    def end(self) -> EnergyResult:
        e1 = read_rapl_uj(self.domains)
        w = self._window()
        per: dict[str, float] = {}
        for d in self.domains:
            per[d.label] = counter_delta(self._e0[d.label], e1[d.label], d.max_range_uj) / 1e6
        total = sum(per.values())
        parts = ", ".join(f"{k}={v:.3f} J" for k, v in per.items())
        return EnergyResult(
            energy_j=total,
            source=self.method,
            detail=f"RAPL energy_uj deltas over {w:.3f} s: {parts}",
            window_s=w,
            counter_zero=total == 0,
            domains_j=per,
        )


def cpu_model_name() -> str | None:
    """The CPU's marketing name from /proc/cpuinfo (None off Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def open_meter(
    device: str,
    sample_interval_s: float = 0.1,
    *,
    gpu: NvmlGpu | None = None,
    gpu_reason: str | None = None,
    rapl_root: Path = DEFAULT_RAPL_ROOT,
) -> EnergyMeter:
    """The best meter for ``device`` ("cpu", "cuda", "cuda:N"), following the module's source order.

    For CUDA devices pass the NvmlGpu from open_nvml_gpu (or the reason it failed); the caller owns
    and closes it. Never raises for a missing source: it returns an UnavailableMeter with the reason.
    """
    if device.startswith("cuda"):
        if gpu is None:
            return UnavailableMeter(gpu_reason or "no NVML device was opened for this GPU")
        counter_reason = gpu.energy_counter_reason()
        if counter_reason is None:
            return NvmlCounterMeter(gpu)
        power_reason = gpu.power_reason()
        if power_reason is None:
            return NvmlSampledMeter(gpu, sample_interval_s)
        return UnavailableMeter(
            f"{gpu.name}: no energy counter ({counter_reason}) and no power reading ({power_reason})",
            gpu.name,
        )
    if device == "cpu":
        name = cpu_model_name()
        try:
            domains = discover_rapl(rapl_root)
            read_rapl_uj(domains)  # fail now, with the reason, rather than mid-measurement
        except RaplUnavailable as err:
            return UnavailableMeter(str(err), name)
        return RaplMeter(domains, name)
    return UnavailableMeter(f"no energy source for device {device!r}")
