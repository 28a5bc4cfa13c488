"""Shared pieces of the benchmark areas: result rows, timing loops, RSS, machine info, rendering.

Python 3.8-compatible on purpose (no ``match``, no ``X | Y`` at runtime).
"""

import asyncio
import contextlib
import gc
import hashlib
import itertools
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024  # "MB" in the report means MiB (VmRSS is reported in KiB)

# ---------------------------------------------------------------- result rows


@dataclass
class Target:
    """A pass/fail threshold.

    ``kind="value"``: the row's median (in the row's unit: ns or bytes) must be within ``limit``.
    ``kind="ratio"``: the row's ratio to its baseline must be within ``limit``.
    ``strict`` makes it ``<`` instead of ``<=``.
    """

    limit: float
    kind: str = "value"
    strict: bool = False

    def check(self, value: float, ratio: Optional[float]) -> Optional[bool]:
        x = ratio if self.kind == "ratio" else value
        if x is None:
            return None
        return x < self.limit if self.strict else x <= self.limit

    def describe(self, unit: str, baseline: Optional[str]) -> str:
        op = "<" if self.strict else "\u2264"
        if self.kind == "ratio":
            return f"{op} {_num(self.limit)}\u00d7 {baseline or 'baseline'}"
        return f"{op} {fmt_value(self.limit, unit, compact=True)}"


@dataclass
class Row:
    """One benchmark result. ``value`` is the median, in ``unit`` ("ns" per op, or "bytes")."""

    area: str
    name: str
    value: float
    unit: str = "ns"
    tag: str = ""  # set on baseline rows ("A", "B", ...) so other rows can refer to them
    baseline: Optional[str] = None  # tag of the baseline row (ratio = value / baseline_value)
    baseline_value: Optional[float] = None
    target: Optional[Target] = None
    samples: List[float] = field(default_factory=list)  # per-op figures, one per batch
    batch: int = 0  # ops per sample
    note: str = ""

    @property
    def ratio(self) -> Optional[float]:
        if self.baseline_value is None or self.baseline_value == 0:
            return None
        return self.value / self.baseline_value

    @property
    def met(self) -> Optional[bool]:
        if self.target is None:
            return None
        return self.target.check(self.value, self.ratio)

    @property
    def label(self) -> str:
        return f"[{self.tag}] {self.name}" if self.tag else self.name

    def relate(self, base: "Row") -> "Row":
        """Make ``base`` (a tagged row) this row's baseline; returns self."""
        self.baseline = base.tag or base.name
        self.baseline_value = base.value
        return self

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["met"] = self.met
        d["target"] = None if self.target is None else self.target_text()
        return d

    def target_text(self) -> str:
        return "" if self.target is None else self.target.describe(self.unit, self.baseline)


def row_from_samples(area: str, name: str, samples: Sequence[float], batch: int, **kw: Any) -> Row:
    return Row(
        area=area, name=name, value=statistics.median(samples), samples=list(samples), batch=batch, **kw
    )


# ---------------------------------------------------------------- settings


@dataclass
class Settings:
    quick: bool
    batches: int  # timed batches per benchmark (median taken over them)
    max_batch: int  # upper bound on calls per batch
    batch_ns: int  # aim for batches about this long
    calibrate_ns: int  # the calibration (also warmup) run lasts at least this long
    native_budget_ns: int  # total time for one native-side (Rust-timed) benchmark
    native_max_n: int
    native_min_figures: int


BENCH_HOOKS = ("_bare_noop", "_bare_detach", "_bench_rust_to_python", "_bench_rust_await", "_bench_future_into_py")


def require_bench_build() -> None:
    """Stop with instructions unless the extension has the benchmark hooks (cargo feature
    `bench`, left out of normal builds)."""
    from agent_runtime import _native

    missing = [h for h in BENCH_HOOKS if not hasattr(_native, h)]
    if missing:
        raise SystemExit(
            "the benchmarks need the extension built with the `bench` feature "
            f"(missing: {', '.join(missing)}); run: maturin develop --release --features bench"
        )


def settings(quick: bool) -> Settings:
    if quick:
        return Settings(True, 9, 2000, 20_000_000, 5_000_000, 200_000_000, 20_000, 9)
    return Settings(False, 15, 10_000, 50_000_000, 20_000_000, 750_000_000, 100_000, 15)


# ---------------------------------------------------------------- timing


@contextlib.contextmanager
def gc_disabled() -> Iterator[None]:
    """Collect, then keep the cyclic GC off for the block (restoring its previous state)."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_SYNC_TEMPLATE = """
def _bench_loop(_n, _clock=_clock, _repeat=_repeat):
    _it = _repeat(None, _n)
    _t0 = _clock()
    for _ in _it:
        {stmt}
    return _clock() - _t0
"""

_ASYNC_TEMPLATE = """
async def _bench_loop(_n, _clock=_clock, _repeat=_repeat):
    _it = _repeat(None, _n)
    _t0 = _clock()
    for _ in _it:
        {stmt}
    return _clock() - _t0
"""


@dataclass
class Case:
    """A statement to time. Names it uses are looked up in ``namespace`` (as module globals,
    so the loop measures the call itself, not attribute lookups). ``stmt`` may use ``await``
    when ``is_async``."""

    name: str
    stmt: str
    namespace: Dict[str, Any]
    is_async: bool = False

    def compile(self) -> Callable[[int], Any]:
        ns = dict(self.namespace)
        ns["_clock"] = time.perf_counter_ns
        ns["_repeat"] = itertools.repeat
        template = _ASYNC_TEMPLATE if self.is_async else _SYNC_TEMPLATE
        # timeit-style: compile the loop around the statement so no extra call frame is timed.
        code = compile(template.format(stmt=self.stmt), f"<bench {self.name}>", "exec")
        exec(code, ns)  # noqa: S102
        return ns["_bench_loop"]  # type: ignore[no-any-return]


@dataclass
class Measurement:
    name: str
    batch: int
    samples: List[float]  # per-call ns, one per batch

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def row(self, area: str, name: str, **kw: Any) -> Row:
        """This measurement as a result row (see ``row_from_samples``)."""
        return row_from_samples(area, name, self.samples, self.batch, **kw)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server started next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def timed_awaits(op: Callable[[], Awaitable[Any]], n: int, warmup: int) -> List[float]:
    """Nanoseconds of each of `n` sequential awaits of `op()`, after `warmup` untimed ones (for
    operations too slow to batch)."""
    for _ in range(warmup):
        await op()
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        await op()
        out.append(float(time.perf_counter_ns() - t))
    return out


def _batch_size(per_call_ns: float, s: Settings) -> int:
    return int(max(1, min(s.max_batch, s.batch_ns // max(per_call_ns, 1.0))))


def measure(cases: Sequence[Case], quick: bool) -> Dict[str, Measurement]:
    """Time synchronous cases. Each is calibrated (which doubles as warmup), then the batches
    run round-robin across the cases so drift affects them all alike. GC is off while timing."""
    s = settings(quick)
    loops = [c.compile() for c in cases]
    sizes = []
    with gc_disabled():
        for loop in loops:
            n = 1
            while True:
                t = loop(n)
                if t >= s.calibrate_ns or n >= 1 << 24:
                    break
                n *= 4
            size = _batch_size(t / n, s)
            loop(size)  # one more warmup at the real batch size
            sizes.append(size)
        out = {c.name: Measurement(c.name, k, []) for c, k in zip(cases, sizes)}
        for _ in range(s.batches):
            for c, loop, k in zip(cases, loops, sizes):
                out[c.name].samples.append(loop(k) / k)
    return out


def measure_async(cases: Sequence[Case], quick: bool) -> Dict[str, Measurement]:
    """Like :func:`measure` for ``await`` statements: everything runs inside one ``asyncio.run``."""
    s = settings(quick)
    loops = [c.compile() for c in cases]

    async def main() -> Dict[str, Measurement]:
        sizes = []
        with gc_disabled():
            for loop in loops:
                n = 1
                while True:
                    t = await loop(n)
                    if t >= s.calibrate_ns or n >= 1 << 24:
                        break
                    n *= 4
                size = _batch_size(t / n, s)
                await loop(size)
                sizes.append(size)
            out = {c.name: Measurement(c.name, k, []) for c, k in zip(cases, sizes)}
            for _ in range(s.batches):
                for c, loop, k in zip(cases, loops, sizes):
                    out[c.name].samples.append((await loop(k)) / k)
        return out

    return asyncio.run(main())


def measure_native(
    name: str, fn: Callable[[int], List[float]], quick: bool, per_figure: int = 100
) -> Measurement:
    """For benchmarks timed on the Rust side: ``fn(n)`` makes ``n`` calls and returns per-call
    ns, one figure per ``per_figure`` calls. A short run calibrates (and warms up); the real
    run is sized to the time budget."""
    s = settings(quick)
    with gc_disabled():
        probe = fn(2 * per_figure)
        per = statistics.median(probe) if probe else 1.0
        figures = int(s.native_budget_ns // max(per * per_figure, 1.0))
        figures = max(s.native_min_figures, min(figures, s.native_max_n // per_figure))
        samples = fn(figures * per_figure)
    return Measurement(name, per_figure, list(samples))


# ---------------------------------------------------------------- memory


def rss_bytes() -> Optional[int]:
    """Resident set size of this process (VmRSS from /proc/self/status), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    parts = line.split()
                    return int(parts[1]) * 1024  # kB
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- formatting


def _num(x: float) -> str:
    if x == int(x):
        return str(int(x))
    return f"{x:g}"


def fmt_value(value: float, unit: str, compact: bool = False) -> str:
    """``value`` (ns or bytes) with a sensible unit; ``compact`` drops trailing zeros."""
    if unit == "bytes":
        return f"{_num(value / MB)} MB" if compact else f"{value / MB:+.2f} MB"
    if unit != "ns":
        return f"{_num(value)} {unit}" if compact else f"{value:.3g} {unit}"
    for scale, suffix in ((1e9, "s"), (1e6, "ms"), (1e3, "\u00b5s")):
        if abs(value) >= scale:
            return f"{_num(value / scale)} {suffix}" if compact else f"{value / scale:.2f} {suffix}"
    return f"{_num(value)} ns" if compact else f"{value:.0f} ns"


def fmt_ratio(r: Optional[float]) -> str:
    if r is None:
        return ""
    return f"{r:.3g}\u00d7"


def fmt_met(m: Optional[bool]) -> str:
    return "" if m is None else ("yes" if m else "NO")


COLUMNS = ["area", "benchmark", "median", "baseline", "ratio", "target", "met"]


def table_cells(rows: Sequence[Row]) -> List[List[str]]:
    by_tag = {(r.area, r.tag): r for r in rows if r.tag}
    out = []
    for r in rows:
        base = ""
        if r.baseline is not None:
            b = by_tag.get((r.area, r.baseline))
            shown = r.baseline_value if b is None else b.value
            base = f"{r.baseline} ({fmt_value(shown or 0.0, r.unit)})"
        out.append(
            [
                r.area,
                r.label,
                fmt_value(r.value, r.unit),
                base,
                fmt_ratio(r.ratio),
                r.target_text(),
                fmt_met(r.met),
            ]
        )
    return out


def render_console(rows: Sequence[Row]) -> str:
    cells = [COLUMNS] + table_cells(rows)
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    right = {2, 4}  # numbers right-aligned

    def line(c: List[str]) -> str:
        return "  ".join(x.rjust(w) if i in right else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths)))

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(c) for c in cells[1:]])


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def render_markdown(rows: Sequence[Row]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |"
    align = "|---|---|---:|---|---:|---|:---:|"
    body = ["| " + " | ".join(_md_escape(x) for x in c) + " |" for c in table_cells(rows)]
    return "\n".join([head, align] + body)


def render_details_markdown(rows: Sequence[Row]) -> str:
    """Spread of the per-batch figures, so noisy rows are visible."""
    head = "| area | benchmark | samples \u00d7 ops | min | median | max | note |"
    align = "|---|---|---:|---:|---:|---:|---|"
    body = []
    for r in rows:
        if r.samples:
            shape = f"{len(r.samples)} \u00d7 {r.batch}"
            lo, hi = fmt_value(min(r.samples), r.unit), fmt_value(max(r.samples), r.unit)
        else:
            shape, lo, hi = (f"1 \u00d7 {r.batch}" if r.batch else "1"), "", ""
        cells = [r.area, r.label, shape, lo, fmt_value(r.value, r.unit), hi, r.note]
        body.append("| " + " | ".join(_md_escape(x) for x in cells) + " |")
    return "\n".join([head, align] + body)


# ---------------------------------------------------------------- machine info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cores() -> str:
    total = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        usable = total
    return str(total) if usable == total else f"{total} ({usable} usable)"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(str(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def native_profile(so_path: str) -> str:
    """Best-effort guess at the cargo profile of the loaded extension: compare it with the
    cdylibs under target/{release,debug}."""
    p = Path(so_path)
    try:
        size = p.stat().st_size
    except OSError:
        return "unknown"
    digest = None
    for profile, desc in (("release", "release (optimized)"), ("debug", "debug (unoptimized dev profile)")):
        cand = REPO_ROOT / "target" / profile / "libagent_runtime.so"
        try:
            if cand.stat().st_size != size:
                continue
            if digest is None:
                digest = _sha256(p)
            if _sha256(cand) == digest:
                return f"{desc} \u2014 identical to target/{profile}/libagent_runtime.so"
        except OSError:
            continue
    return "unknown (matches neither target/release nor target/debug)"


def machine_info() -> Dict[str, str]:
    import agent_runtime
    from agent_runtime import _native

    abi3 = bool(getattr(_native, "ABI3", False))
    so = getattr(_native, "__file__", "") or ""
    size = ""
    try:
        size = ", %.1f MB" % (os.path.getsize(so) / MB)
    except OSError:
        pass
    return {
        "CPU": cpu_model(),
        "cores": cores(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "agent_runtime": str(agent_runtime.__version__),
        "build type": "abi3 wheel (stable ABI)"
        if abi3
        else "version-specific (cp{}{})".format(*sys.version_info[:2]),
        "native profile": native_profile(so) if so else "unknown",
        "extension": f"{os.path.basename(so)}{size}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": _git_commit(),
        # Other work on the machine shows in every cross-thread row: say how busy it was.
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _git_commit() -> str:
    """The checked-out commit (``+dirty`` with local changes), or "unknown" outside a checkout."""
    root = str(Path(__file__).resolve().parent.parent)
    def git(*args: str) -> str:
        p = subprocess.run(["git", "-C", root, *args], check=False, capture_output=True, text=True, timeout=10)
        return p.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + ("+dirty" if dirty else "")) if head else "unknown"

