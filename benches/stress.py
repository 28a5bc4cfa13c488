"""``python -m benches.stress [--quick | --ci] [--soak [MINUTES]] [--only CHECK ...] [--out PATH]``

Stress and soak checks ("proof under load"), each pass/fail with its numbers:

* ``grpc-load``: ``agent-runtime serve --grpc`` serving a Python tool (``bench.echo``) and a
  Rust tool (``diag.echo``) under the Rust load client (examples/grpc_load.rs), 64 calls in
  flight, every answer compared; 0 errors required and the server's RSS must stay flat
  (sampled from /proc/<pid>/status after each chunk of calls; growth after the warm-up chunk
  under ``GRPC_RSS_LIMIT``).
* ``in-process``: 1M ``call()``s of a Python tool and 1M of a Rust tool in this process, every
  result checked; RSS growth after warm-up under 5 MB each.
* ``mixed``: threads calling ``call()`` and asyncio tasks calling ``call_async()`` over every
  workload kind in :data:`KINDS` (sync, async, failing, timing-out Python tools; Rust tools;
  invalid arguments; unknown tools), every result checked exactly (value, or exception type
  and message). Runs ``MIXED_SECONDS`` normally, ``--soak`` minutes (default 10) in soak mode.

Modes: default = full sizes; ``--quick`` = 10× smaller (about a minute); ``--ci`` = the quick
sizes with the load client built in debug next to the test build (no release build in CI).
The summary goes to stdout and ``benches/STRESS.md`` (folded into RESULTS.md by
``python -m benches``). Exit status 1 when a check fails.

Adding a workload kind: one :class:`Kind` entry in ``KINDS``
(and its tool in :func:`register_tools` if it needs one).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import itertools
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type

from .common import MB, REPO_ROOT, machine_info, rss_bytes

DEFAULT_OUT = Path(__file__).resolve().parent / "STRESS.md"
GRPC_CONCURRENCY = 64
GRPC_RSS_LIMIT = 10 * MB  # server RSS growth allowed after the warm-up chunk
IN_PROCESS_RSS_LIMIT = 5 * MB
MIXED_SECONDS = 60.0
SOAK_DEFAULT_MINUTES = 10.0


@dataclass
class Sizes:
    grpc_calls: int  # per tool
    grpc_chunks: int
    in_process_calls: int  # per tool
    mixed_seconds: float


def sizes(mode: str) -> Sizes:
    if mode == "full":
        return Sizes(100_000, 10, 1_000_000, MIXED_SECONDS)
    return Sizes(10_000, 5, 100_000, 10.0)


@dataclass
class Check:
    """One check's outcome: ``details`` are (label, value) pairs for the report."""

    name: str
    ok: bool
    summary: str
    details: List[Tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def _mb(n: Optional[int]) -> str:
    return "?" if n is None else f"{n / MB:.1f} MB"


def _delta(n: Optional[int]) -> str:
    return "?" if n is None else f"{n / MB:+.2f} MB"


def proc_rss(pid: int) -> Optional[int]:
    """VmRSS of another process, bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- tools


def iso_add(a: int, b: int = 1) -> int:
    """a + b, in an isolation worker (module level: workers import it as benches.stress)."""
    return a + b


async def iso_aadd(a: int, b: int = 1) -> int:
    """a + b after a suspension point, in an isolation worker."""
    await asyncio.sleep(0)
    return a + b


def register_tools() -> None:
    """The ``stress.*`` Python tools on the default registry, plus the Rust ``diag.*`` tools."""
    import agent_runtime

    agent_runtime.register_diagnostic_tools()
    tool = agent_runtime.tool
    # Workers import tools by module name; under `python -m benches.stress` this module is
    # __main__, so take the functions from its importable name.
    importable = importlib.import_module("benches.stress")
    tool(name="stress.iso_add", isolated=True, replace=True)(importable.iso_add)
    tool(name="stress.iso_aadd", isolated=True, replace=True)(importable.iso_aadd)

    @tool(name="stress.add", replace=True)
    def add(a: int, b: int = 1) -> int:
        """a + b."""
        return a + b

    @tool(name="stress.aadd", replace=True)
    async def aadd(a: int, b: int = 1) -> int:
        """a + b after a suspension point."""
        await asyncio.sleep(0)
        return a + b

    @tool(name="stress.fail", replace=True)
    def fail(n: int) -> None:
        """Raise ValueError naming n."""
        raise ValueError(f"stress failure {n}")

    @tool(name="stress.afail", replace=True)
    async def afail(n: int) -> None:
        """Raise KeyError naming n, after a suspension point."""
        await asyncio.sleep(0)
        raise KeyError(f"stress {n}")

    @tool(name="stress.slow", replace=True)
    async def slow(seconds: float) -> float:
        """Sleep (cancellably), then return seconds."""
        await asyncio.sleep(seconds)
        return seconds


# ---------------------------------------------------------------- workload kinds


@dataclass
class Expect:
    """A call's expected outcome: a value, or an exception type whose message contains ``text``."""

    value: Any = None
    error: Optional[Type[BaseException]] = None
    text: str = ""

    def check(self, got: Any, err: Optional[BaseException]) -> Optional[str]:
        """None when it matches, else what went wrong."""
        if self.error is None:
            if err is not None:
                return f"expected {self.value!r}, raised {type(err).__name__}: {err}"
            if got != self.value or type(got) is not type(self.value):
                return f"expected {self.value!r}, got {got!r}"
            return None
        if err is None:
            return f"expected {self.error.__name__}, got {got!r}"
        if type(err) is not self.error:
            return f"expected {self.error.__name__}, raised {type(err).__name__}: {err}"
        if self.text not in str(err):
            return f"expected {self.error.__name__} containing {self.text!r}, got {err}"
        return None


@dataclass
class Kind:
    """A workload kind: ``make(i)`` → (tool, args, timeout or None, expected outcome)."""

    name: str
    make: Callable[[int], Tuple[str, Dict[str, Any], Optional[float], Expect]]


def _kinds() -> List[Kind]:
    import agent_runtime as ar

    nested = {"list": [1, 2.5, "x", None, True], "obj": {"k": [{"deep": "v"}]}}
    return [
        Kind("sync Python", lambda i: ("stress.add", {"a": i, "b": 1}, None, Expect(i + 1))),
        Kind("async Python", lambda i: ("stress.aadd", {"a": i, "b": 2}, None, Expect(i + 2))),
        Kind("Rust", lambda i: ("diag.add", {"a": i, "b": 3}, None, Expect(i + 3))),
        Kind(
            "Rust echo",
            lambda i: ("diag.echo", {"i": i, **nested}, None, Expect({"i": i, **nested})),
        ),
        Kind(
            "Rust → Python",
            lambda i: ("diag.call", {"name": "stress.add", "args": {"a": i}}, None, Expect(i + 1)),
        ),
        Kind(
            "failing Python",
            lambda i: ("stress.fail", {"n": i}, None, Expect(error=ValueError, text=f"stress failure {i}")),
        ),
        Kind(
            "failing async Python",
            lambda i: ("stress.afail", {"n": i}, None, Expect(error=KeyError, text=f"stress {i}")),
        ),
        Kind(
            "failing Rust",
            lambda i: ("diag.fail", {"message": f"no {i}"}, None, Expect(error=ar.ToolError, text=f"no {i}")),
        ),
        Kind(
            "timing-out Python",
            lambda i: ("stress.slow", {"seconds": 30.0}, 0.005, Expect(error=ar.ToolTimeout, text="stress.slow")),
        ),
        Kind(
            "timing-out Rust",
            lambda i: ("diag.sleep", {"seconds": 30.0}, 0.005, Expect(error=ar.ToolTimeout, text="diag.sleep")),
        ),
        Kind(
            "invalid arguments",
            lambda i: ("diag.add", {"a": str(i), "b": 1}, None, Expect(error=ar.InvalidArguments, text="at a")),
        ),
        Kind(
            "unknown tool",
            lambda i: ("stress.nope", {}, None, Expect(error=ar.ToolNotFound, text="stress.nope")),
        ),
        Kind("isolated Python", lambda i: ("stress.iso_add", {"a": i, "b": 4}, None, Expect(i + 4))),
        Kind("isolated async Python", lambda i: ("stress.iso_aadd", {"a": i, "b": 5}, None, Expect(i + 5))),
    ]


@dataclass
class Tally:
    calls: int = 0
    failures: int = 0
    examples: List[str] = field(default_factory=list)
    total_ns: int = 0

    def add(self, problem: Optional[str], ns: int) -> None:
        self.calls += 1
        self.total_ns += ns
        if problem is not None:
            self.failures += 1
            if len(self.examples) < 3:
                self.examples.append(problem)


class Tallies:
    def __init__(self, kinds: Sequence[Kind]) -> None:
        self.lock = threading.Lock()
        self.by_kind = {k.name: Tally() for k in kinds}

    def add(self, kind: str, problem: Optional[str], ns: int) -> None:
        with self.lock:
            self.by_kind[kind].add(problem, ns)


# ---------------------------------------------------------------- mixed workload / soak


def mixed(seconds: float, threads: int = 4, tasks: int = 16) -> Check:
    """``threads`` threads with sync ``call()`` and ``tasks`` asyncio tasks with ``call_async()``,
    cycling through every kind until ``seconds`` have passed."""
    import agent_runtime as ar

    kinds = _kinds()
    tally = Tallies(kinds)
    stop_at = time.monotonic() + seconds
    counter = itertools.count()
    crashed: List[str] = []

    def jobs(offset: int) -> Iterator[Tuple[Kind, Tuple[str, Dict[str, Any], Optional[float], Expect]]]:
        """The kinds in turn (each worker from its own offset) until time is up."""
        for j in itertools.count(offset):
            if time.monotonic() >= stop_at:
                return
            k = kinds[j % len(kinds)]
            yield k, k.make(next(counter))

    def sync_worker(offset: int) -> None:
        try:
            for k, (tool, args, timeout, expect) in jobs(offset):
                t0 = time.perf_counter_ns()
                got, err = None, None
                try:
                    got = ar.call(tool, args, timeout=timeout)
                except Exception as e:  # noqa: BLE001 - checked against the expectation
                    err = e
                tally.add(k.name, expect.check(got, err), time.perf_counter_ns() - t0)
        except BaseException as e:  # noqa: BLE001 - a worker dying is a failure of the check
            crashed.append(f"sync worker: {type(e).__name__}: {e}")

    async def async_worker(offset: int) -> None:
        for k, (tool, args, timeout, expect) in jobs(offset):
            t0 = time.perf_counter_ns()
            got, err = None, None
            try:
                got = await ar.call_async(tool, args, timeout=timeout)
            except Exception as e:  # noqa: BLE001 - checked against the expectation
                err = e
            tally.add(k.name, expect.check(got, err), time.perf_counter_ns() - t0)

    def async_thread() -> None:
        async def main() -> None:
            await asyncio.gather(*(async_worker(n * 7) for n in range(tasks)))

        try:
            asyncio.run(main())
        except BaseException as e:  # noqa: BLE001 - reported as a failure
            crashed.append(f"asyncio thread: {type(e).__name__}: {e}")

    gc.collect()
    rss0 = rss_bytes()
    t0 = time.monotonic()
    workers = [threading.Thread(target=sync_worker, args=(n * 3,), name=f"stress-sync-{n}") for n in range(threads)]
    workers.append(threading.Thread(target=async_thread, name="stress-asyncio"))
    for w in workers:
        w.start()
    last_report = t0
    while any(w.is_alive() for w in workers):
        time.sleep(0.5)
        if seconds >= 120 and time.monotonic() - last_report >= 60:
            last_report = time.monotonic()
            n = sum(t.calls for t in tally.by_kind.values())
            bad = sum(t.failures for t in tally.by_kind.values())
            print(f"    {time.monotonic() - t0:5.0f} s: {n:,} calls, {bad} failures, RSS {_mb(rss_bytes())}", flush=True)
        if time.monotonic() > stop_at + 120:
            crashed.append("workers did not stop within 120 s of the end (a hung call?)")
            break
    elapsed = time.monotonic() - t0
    gc.collect()
    rss1 = rss_bytes()
    total = sum(t.calls for t in tally.by_kind.values())
    failures = sum(t.failures for t in tally.by_kind.values())
    details = []
    for name, t in tally.by_kind.items():
        mean = t.total_ns / t.calls / 1e3 if t.calls else 0.0
        line = f"{t.calls:,} calls, {t.failures} wrong, mean {mean:,.0f} µs"
        if t.examples:
            line += "; e.g. " + " | ".join(t.examples)
        details.append((name, line))
    missing = [name for name, t in tally.by_kind.items() if t.calls == 0]
    ok = failures == 0 and not crashed and not missing and total > 0
    details.append(("RSS", f"{_mb(rss0)} → {_mb(rss1)} ({_delta(None if rss0 is None or rss1 is None else rss1 - rss0)})"))
    for c in crashed:
        details.append(("crash", c))
    if missing:
        details.append(("not exercised", ", ".join(missing)))
    summary = (
        f"{total:,} calls over {len(kinds)} kinds in {elapsed:.0f} s ({threads} threads + {tasks} asyncio tasks), "
        f"{failures} wrong results"
    )
    return Check(f"mixed workload ({seconds / 60:.3g} min)", ok, summary, details, elapsed)


# ---------------------------------------------------------------- in-process volume


def in_process(calls: int) -> Check:
    """``calls`` sync ``call()``s each of a Python and a Rust tool, every result checked; RSS
    growth after a warm-up must stay under ``IN_PROCESS_RSS_LIMIT`` per tool."""
    import agent_runtime as ar

    t_start = time.monotonic()
    details = []
    ok = True
    call = ar.call
    for label, tool, b in (("Python tool stress.add", "stress.add", 1), ("Rust tool diag.add", "diag.add", 3)):
        warm = max(calls // 20, 1000)
        for i in range(warm):
            call(tool, {"a": i, "b": b})
        gc.collect()
        r0 = rss_bytes()
        wrong = 0
        t0 = time.perf_counter()
        for i in range(calls):
            if call(tool, {"a": i, "b": b}) != i + b:
                wrong += 1
        secs = time.perf_counter() - t0
        gc.collect()
        r1 = rss_bytes()
        growth = None if r0 is None or r1 is None else r1 - r0
        passed = wrong == 0 and growth is not None and growth < IN_PROCESS_RSS_LIMIT
        ok = ok and passed
        details.append(
            (
                label,
                (f"{calls:,} calls in {secs:.1f} s ({calls / secs:,.0f}/s), {wrong} wrong; RSS {_mb(r0)} → {_mb(r1)} "
                f"({_delta(growth)}, limit < {IN_PROCESS_RSS_LIMIT / MB:.0f} MB) {'ok' if passed else 'FAILED'}"),
            )
        )
    return Check(
        f"in-process calls ({calls:,} per tool)",
        ok,
        "every result right and RSS flat" if ok else "wrong results or RSS growth",
        details,
        time.monotonic() - t_start,
    )


# ---------------------------------------------------------------- gRPC under the load client


def _debug_load_client() -> Tuple[Optional[Path], str]:
    """CI: build the load client next to the debug test build (links the already built lib)."""
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    cmd = [cargo, "build", "-q", "--example", "grpc_load"]
    p = subprocess.run(cmd, cwd=str(REPO_ROOT), capture_output=True, text=True, check=False, timeout=1200)
    if p.returncode != 0:
        return None, f"cargo build failed: {p.stderr.strip()[-500:]}"
    return REPO_ROOT / "target" / "debug" / "examples" / "grpc_load", "debug build of the load client"


def grpc_load(calls: int, chunks: int, ci: bool) -> Check:
    from . import grpc as g

    t_start = time.monotonic()
    binary, how = _debug_load_client() if ci else g._build_load_client()
    if binary is None:
        return Check("gRPC load", False, f"load client unavailable: {how}", [], time.monotonic() - t_start)
    server = g._start_ours()
    details: List[Tuple[str, str]] = [("server", f"agent-runtime serve --grpc, pid {server.proc.pid}, {how}")]
    targets = [(tool, expected) for _key, _label, tool, expected in g.TARGETS if _key != g.NOTE]
    ok = True
    try:
        rss_start = proc_rss(server.proc.pid)
        per_chunk = max(calls // chunks, GRPC_CONCURRENCY)
        errors = 0
        done = {tool: 0 for tool, _ in targets}
        secs = {tool: 0.0 for tool, _ in targets}
        series: List[Optional[int]] = []
        problems: List[str] = []
        for _chunk in range(chunks):
            for tool, expected in targets:
                try:
                    r = g._load_run(binary, server.addr, tool, expected, per_chunk)
                    secs[tool] += float(r["secs"])
                except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:  # wrong answers, client failure
                    errors += 1
                    problems.append(str(e)[:300])
                done[tool] += per_chunk
            series.append(proc_rss(server.proc.pid))
            if server.proc.poll() is not None:
                problems.append(f"server exited with {server.proc.returncode}: {server.output()}")
                break
        warm = series[0] if series else None
        end = series[-1] if series else None
        growth = None if warm is None or end is None else end - warm
        flat = growth is not None and growth < GRPC_RSS_LIMIT
        ok = errors == 0 and not problems and flat
        for tool, _ in targets:
            rate = done[tool] / secs[tool] if secs[tool] else 0.0
            details.append((tool, f"{done[tool]:,} calls, {GRPC_CONCURRENCY} in flight, {rate:,.0f} calls/s"))
        details.append(("chunks with errors", f"{errors}" + (f": {problems[:2]}" if problems else "")))
        details.append(
            (
                "server RSS",
                (f"start {_mb(rss_start)}, after first chunk {_mb(warm)}, end {_mb(end)} "
                f"(growth after warm-up {_delta(growth)}, limit < {GRPC_RSS_LIMIT / MB:.0f} MB)"),
            )
        )
        details.append(("RSS per chunk", ", ".join(_mb(x) for x in series)))
        total = sum(done.values())
        summary = f"{total:,} calls, {'0 errors' if errors == 0 else f'{errors} failed chunks'}, RSS {'flat' if flat else 'GREW'}"
    finally:
        code = server.stop()
        if code not in (0, None):
            ok = False
            details.append(("server exit", f"{code}: {server.output()}"))
    return Check(f"gRPC load ({calls:,} calls per tool)", ok, summary, details, time.monotonic() - t_start)


# ---------------------------------------------------------------- report


CHECKS = ["grpc-load", "in-process", "mixed"]


def render(checks: Sequence[Check], argv: Sequence[str], info: Dict[str, str]) -> str:
    lines = [
        (f"Generated by `python -m benches.stress{' ' + ' '.join(argv) if argv else ''}` on {info['date']} "
        f"({info['CPU']}, {info['cores']} cores, Python {info['Python']}, {info['native profile']})."),
        "",
        "| check | result | summary | seconds |",
        "|---|:---:|---|---:|",
    ]
    for c in checks:
        lines.append(f"| {c.name} | {'pass' if c.ok else 'FAIL'} | {c.summary} | {c.seconds:.0f} |")
    for c in checks:
        lines += ["", f"**{c.name}**", ""]
        lines += [f"- {k}: {v}".replace("|", "\\|") for k, v in c.details]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benches.stress", description=__doc__.split("\n\n")[1])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="10x smaller sizes")
    mode.add_argument("--ci", action="store_true", help="quick sizes, load client built in debug")
    p.add_argument(
        "--soak",
        nargs="?",
        type=float,
        const=SOAK_DEFAULT_MINUTES,
        default=None,
        metavar="MINUTES",
        help=f"run the mixed workload for MINUTES (default {SOAK_DEFAULT_MINUTES:g})",
    )
    p.add_argument("--only", action="append", choices=CHECKS, help="run only this check (repeatable)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown summary (default: %(default)s)")
    args = p.parse_args(argv)
    raw_argv = list(argv if argv is not None else sys.argv[1:])

    s = sizes("full" if not (args.quick or args.ci) else "quick")
    mixed_seconds = args.soak * 60 if args.soak is not None else s.mixed_seconds
    register_tools()
    info = machine_info()
    selected = args.only or CHECKS
    checks: List[Check] = []
    for name in CHECKS:
        if name not in selected:
            continue
        print(f"running {name} ...", flush=True)
        if name == "grpc-load":
            c = grpc_load(s.grpc_calls, s.grpc_chunks, args.ci)
        elif name == "in-process":
            c = in_process(s.in_process_calls)
        else:
            c = mixed(mixed_seconds)
        print(f"  {'pass' if c.ok else 'FAIL'}: {c.summary} ({c.seconds:.0f} s)", flush=True)
        for k, v in c.details:
            print(f"    {k}: {v}", flush=True)
        checks.append(c)
    report = render(checks, raw_argv, info)
    args.out.write_text(report, encoding="utf-8")
    print(f"\nwrote {args.out}")
    failed = [c.name for c in checks if not c.ok]
    if failed:
        print("FAILED: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
