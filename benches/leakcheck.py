"""``python -m benches.leakcheck [--calls N] [--out PATH]``: a short workload of the native
module under valgrind's memcheck, and how many bytes are *definitely lost* in blocks allocated
from agent_runtime's code.

CPython runs with ``PYTHONMALLOC=malloc`` so every Python allocation is visible to valgrind.
Leak records are attributed by their allocation stack: a record is agent_runtime's when a frame
lies in the extension (``_native…so``) or names an ``agent_runtime::`` / pyo3 / tokio symbol
reached from it; the rest is the interpreter's own exit-time noise (reported, not counted).
Writes ``benches/LEAKCHECK.md`` (folded into RESULTS.md by ``python -m benches``); exit 1 when
agent_runtime definitely lost anything. ``--workload`` runs the workload alone (what valgrind
runs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

DEFAULT_OUT = Path(__file__).resolve().parent / "LEAKCHECK.md"
OURS = re.compile(r"_native\.|agent_runtime|pyo3|pythonize|tokio|serde_json|jsonschema")


def workload(calls: int) -> Dict[str, int]:
    """Every path through the boundary a few thousand times: sync/async Python tools, Rust
    tools, failures, timeouts, conversion errors, tasks, nested Rust → Python calls."""
    import agent_runtime as ar

    ar.register_diagnostic_tools()

    @ar.tool(name="leak.add", replace=True)
    def add(a: int, b: int = 1) -> int:
        return a + b

    @ar.tool(name="leak.aadd", replace=True)
    async def aadd(a: int, b: int = 1) -> int:
        await asyncio.sleep(0)
        return a + b

    @ar.tool(name="leak.fail", replace=True)
    def fail(n: int) -> None:
        raise ValueError(f"leak {n}")

    @ar.tool(name="leak.slow", replace=True)
    async def slow(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    counts = {"ok": 0, "errors": 0}

    def expect_error(fn, *a, **kw) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*a, **kw)
        except (ar.AgentRuntimeError, ValueError):
            counts["errors"] += 1
        else:
            raise AssertionError(f"{a} did not fail")

    for i in range(calls):
        assert ar.call("leak.add", {"a": i}) == i + 1
        assert ar.call("diag.add", {"a": i, "b": 1}) == i + 1
        assert ar.call("diag.echo", {"v": [i, {"k": "s" * 10}], "b": b"xy"}) == {"v": [i, {"k": "s" * 10}], "b": "eHk="}
        assert ar.call("diag.call", {"name": "leak.add", "args": {"a": i}}) == i + 1
        assert ar.call("leak.aadd", {"a": i}) == i + 1
        counts["ok"] += 5
        expect_error(ar.call, "leak.fail", {"n": i})
        expect_error(ar.call, "diag.fail", {"message": "x"})
        expect_error(ar.call, "diag.add", {"a": "x", "b": 1})
        expect_error(ar.call, "diag.echo", {"v": 2**70})
        expect_error(ar.call, "leak.nope")
        if i % 20 == 0:
            expect_error(ar.call, "leak.slow", {"seconds": 10.0}, timeout=0.001)
            expect_error(ar.call, "diag.sleep", {"seconds": 10.0}, timeout=0.001)
            t = ar.spawn("diag.add", {"a": i, "b": 2})
            assert t.result(30) == i + 2
            counts["ok"] += 1

    async def many() -> None:
        for i in range(calls // 4):
            got = await asyncio.gather(
                ar.call_async("leak.aadd", {"a": i}),
                ar.call_async("diag.add", {"a": i, "b": 1}),
                ar.call_async("leak.add", {"a": i}),
            )
            assert got == [i + 1, i + 1, i + 1]
            counts["ok"] += 3

    asyncio.run(many())
    return counts


def _records(log: str, kind: str) -> List[Tuple[int, str]]:
    """(bytes, stack) of every ``kind`` ("definitely lost", "possibly lost") record in a
    memcheck log."""
    out = []
    for b in re.split(r"\n==\d+== \n", log):
        m = re.search(r"([\d,]+)(?: \([\d,]+ direct, [\d,]+ indirect\))? bytes in [\d,]+ blocks are " + kind, b)
        if m:
            out.append((int(m.group(1).replace(",", "")), b))
    return out


def _summary(log: str, kind: str) -> Optional[int]:
    m = re.search(kind + r": +([\d,]+) bytes in ([\d,]+) blocks", log)
    return int(m.group(1).replace(",", "")) if m else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benches.leakcheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=400, help="workload iterations (default %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.workload:
        counts = workload(args.calls)
        print(f"workload done: {counts}")
        return 0

    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 2
    import agent_runtime._native as native

    so = os.path.basename(native.__file__)
    env = dict(os.environ, PYTHONMALLOC="malloc")
    with tempfile.TemporaryDirectory() as d:
        log_path = os.path.join(d, "memcheck.log")
        cmd = [
            valgrind, "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite,possible",
            "--errors-for-leak-kinds=definite", "--num-callers=50", f"--log-file={log_path}",
            sys.executable, "-m", "benches.leakcheck", "--workload", "--calls", str(args.calls),
        ]  # fmt: skip
        print("running: " + " ".join(cmd), flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=str(Path(__file__).resolve().parent.parent), env=env, check=False)
        secs = time.monotonic() - t0
        log = Path(log_path).read_text(errors="replace")
    records = _records(log, "definitely lost")
    ours = [(n, s) for n, s in records if OURS.search(s)]
    ours_bytes = sum(n for n, _ in ours)
    other_bytes = sum(n for n, s in records if not OURS.search(s))
    maybe = _records(log, "possibly lost")
    maybe_ours = sum(n for n, s in maybe if OURS.search(s))
    definite = _summary(log, "definitely lost")
    indirect = _summary(log, "indirectly lost")
    possibly = _summary(log, "possibly lost")
    reachable = _summary(log, "still reachable")
    lines = [
        (f"Generated by `python -m benches.leakcheck --calls {args.calls}` on {time.strftime('%Y-%m-%d %H:%M %Z')}: "
        f"valgrind {subprocess.run([valgrind, '--version'], capture_output=True, text=True, check=False).stdout.strip()} "
        f"memcheck, `PYTHONMALLOC=malloc`, Python {sys.version.split()[0]}, extension {so}; {secs:.0f} s under valgrind, "
        f"workload exit {proc.returncode}."),
        "",
        "| measure | bytes |",
        "|---|---:|",
        f"| definitely lost, allocated from agent_runtime (`_native`, its Rust crates) | {ours_bytes:,} in {len(ours)} records |",
        f"| definitely lost, elsewhere (interpreter exit-time) | {other_bytes:,} |",
        f"| definitely lost, total (valgrind summary) | {definite if definite is not None else '?'} |",
        f"| indirectly lost | {indirect if indirect is not None else '?'} |",
        f"| possibly lost, total | {possibly if possibly is not None else '?'} |",
        f"| possibly lost, allocated from agent_runtime | {maybe_ours:,} |",
        f"| still reachable at exit (statics, interned objects) | {reachable if reachable is not None else '?'} |",
        "",
    ]
    for n, s in ours[:5]:
        frames = "\n".join(ln.split("== ", 1)[-1] for ln in s.strip().splitlines()[:14])
        lines += [f"Record attributed to agent_runtime ({n} bytes):", "", "```", frames, "```", ""]
    report = "\n".join(lines)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    print(f"wrote {args.out}")
    if proc.returncode != 0:
        print(f"workload failed under valgrind (exit {proc.returncode})", file=sys.stderr)
        return 1
    return 1 if ours_bytes else 0


if __name__ == "__main__":
    sys.exit(main())
