"""gRPC area: our ``agent-runtime serve --grpc`` against the design note's Python grpcio server
(python-ffi-integration.md), both serving the same ``echo(value) -> value`` tool over the same
contract (``proto/python_service.proto``), plus the note's subprocess-per-call approach.

Baselines: P = the note's server, sequential latency; T = the note's server, 16 client threads;
L = the note's server under the Rust load client (64 calls in flight); S = the note's
subprocess-per-call ``RunFunction`` (the Go code's approach, a fresh interpreter per call).

Every server runs in its own process on a free loopback port. The Python client rows use the
stubs generated at bench time from the proto (one channel per server for the sequential rows, a
channel per client thread for the throughput rows); the Rust rows use examples/grpc_load.rs.
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .common import REPO_ROOT, Case, Row, Target, measure, row_from_samples

AREA = "grpc"

SUPPORT = Path(__file__).resolve().parent / "grpc_support"
PROTO_DIR = REPO_ROOT / "proto"
VALUE: Dict[str, Any] = {"k": "v", "n": 1}
ARGS: Dict[str, Any] = {"value": VALUE}
ARGS_JSON = json.dumps(ARGS)
CALL_TIMEOUT = 30.0  # seconds, per gRPC call (keeps every loop bounded if a server hangs)
START_TIMEOUT = 60.0  # seconds for a server to report its address
THREADS = 16  # Python client threads in the throughput rows
CONCURRENCY = 64  # calls in flight in the Rust load client rows
BUILD_TIMEOUT = 1200.0  # seconds for `cargo build` of the load client
PY_CLIENT_NOTE = (
    "grpcio Python client in the bench process (GIL-bound): it may be the bottleneck, not the server"
)

# Which server answers, and with what: (key, row label, tool, expected result).
NOTE, OURS_PY, OURS_RUST = "note", "ours_py", "ours_rust"
TARGETS: List[Tuple[str, str, str, Any]] = [
    (NOTE, "note's Python grpcio server, Python echo", "bench.echo", VALUE),
    (OURS_PY, "ours (agent-runtime serve), Python tool bench.echo", "bench.echo", VALUE),
    (OURS_RUST, "ours (agent-runtime serve), Rust tool diag.echo", "diag.echo", ARGS),
]

# ---------------------------------------------------------------- generated client code


def _generate(out_dir: str) -> Tuple[Any, Any]:
    """``python_service_pb2`` / ``_pb2_grpc`` from the proto, generated into ``out_dir``."""
    from grpc_tools import protoc

    rc = protoc.main(
        [
            "protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            "python_service.proto",
        ]
    )
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed (exit {rc}) on {PROTO_DIR / 'python_service.proto'}")
    mods = []
    for name in ("python_service_pb2", "python_service_pb2_grpc"):
        spec = importlib.util.spec_from_file_location(name, os.path.join(out_dir, name + ".py"))
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load generated {name}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # the _grpc module imports the _pb2 module by name
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods[0], mods[1]


# ---------------------------------------------------------------- server processes


class ServerProcess:
    """A server subprocess that reports ``listening on HOST:PORT`` on stderr; stderr is drained
    in the background (kept for error messages)."""

    def __init__(self, label: str, cmd: Sequence[str], env: Dict[str, str]) -> None:
        self.label = label
        self.lines: List[str] = []
        self.addr = ""
        self.proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(SUPPORT),
        )
        found: List[str] = []
        self._reader = threading.Thread(target=self._read, args=(found,), name=f"{label}-stderr", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not found and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.02)
        if not found:
            self.stop()
            raise RuntimeError(f"{label} did not start: {self.output()}")
        self.addr = found[0]

    def _read(self, found: List[str]) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if not found:
                m = re.search(r"listening on (\S+)", line)
                if m:
                    found.append(m.group(1))

    def output(self) -> str:
        return "".join(self.lines[-40:]).strip() or "(no output)"

    def stop(self) -> Optional[int]:
        """SIGTERM, then SIGKILL if it does not exit within 15 s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self._reader.join(5)
        return self.proc.returncode


def _env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("AGENT_RUNTIME_TOKEN", None)
    env.update(extra)
    return env


def _start_note_server(gen_dir: str) -> ServerProcess:
    cmd = [sys.executable, str(SUPPORT / "note_server.py"), gen_dir, "1800"]
    return ServerProcess("note's Python server", cmd, _env())


def _start_ours() -> ServerProcess:
    cmd = [
        sys.executable, "-m", "agent_runtime",
        "--path", str(SUPPORT), "--import", "ours_tools",
        "serve", "--grpc", "127.0.0.1:0",
    ]  # fmt: skip
    return ServerProcess("agent-runtime serve", cmd, _env())


# ---------------------------------------------------------------- Python client rows


def _check(pb2: Any, stub: Any, tool: str, expected: Any, label: str) -> None:
    r = stub.RunTool(pb2.RunToolRequest(tool_name=tool, args_json=ARGS_JSON), timeout=CALL_TIMEOUT)
    if r.error or json.loads(r.result_json) != expected:
        raise RuntimeError(f"{label}: RunTool({tool}) returned {r.result_json!r}, error {r.error!r}")


def _sequential(pb2: Any, stubs: Dict[str, Any], quick: bool) -> Dict[str, Row]:
    ns: Dict[str, Any] = {"T": CALL_TIMEOUT}
    cases = []
    for key, _label, tool, _expected in TARGETS:
        ns["call_" + key] = stubs[key].RunTool
        ns["req_" + key] = pb2.RunToolRequest(tool_name=tool, args_json=ARGS_JSON)
        cases.append(Case(key, f"call_{key}(req_{key}, timeout=T)", ns))
    m = measure(cases, quick)
    note = "grpcio client, one channel, sequential unary RunTool calls"
    rows = {}
    for key, label, tool, _expected in TARGETS:
        rows[key] = row_from_samples(
            AREA, f"sequential RunTool latency: {label}", m[key].samples, m[key].batch, note=note
        )
    rows[NOTE].tag = "P"
    rows[OURS_PY].relate(rows[NOTE])
    rows[OURS_RUST].relate(rows[NOTE])
    return rows


def _throughput_round(pb2: Any, stubs: Sequence[Any], tool: str, expected: Any, per_thread: int) -> float:
    """One thread per stub (each stub on its own channel), each making ``per_thread`` calls;
    returns the wall time in ns. Raises on any wrong answer."""
    req = pb2.RunToolRequest(tool_name=tool, args_json=ARGS_JSON)
    barrier = threading.Barrier(len(stubs) + 1)
    errors: List[str] = []

    def worker(stub: Any) -> None:
        try:
            barrier.wait(60)
            for _ in range(per_thread):
                r = stub.RunTool(req, timeout=CALL_TIMEOUT)
                if r.error or json.loads(r.result_json) != expected:
                    errors.append(f"{r.result_json!r} / {r.error!r}")
                    return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [
        threading.Thread(target=worker, args=(st,), name=f"grpc-bench-{i}") for i, st in enumerate(stubs)
    ]
    for t in threads:
        t.start()
    barrier.wait(60)
    t0 = time.perf_counter_ns()
    for t in threads:
        t.join(600)
    wall = time.perf_counter_ns() - t0
    if errors or any(t.is_alive() for t in threads):
        raise RuntimeError(f"throughput round of {tool}: {errors[:3] or 'threads did not finish'}")
    return float(wall)


def _throughput(pb2: Any, pb2_grpc: Any, addrs: Dict[str, str], quick: bool) -> Dict[str, Row]:
    """``THREADS`` client threads per server, each with its own channel and stub (a little faster
    than one shared channel with this client); fixed calls per round, rounds round-robin."""
    import grpc

    rounds, per_thread = (3, 50) if quick else (7, 150)
    calls = THREADS * per_thread
    samples: Dict[str, List[float]] = {key: [] for key, *_ in TARGETS}
    channels: List[Any] = []
    try:
        stubs: Dict[str, List[Any]] = {}
        for key, *_ in TARGETS:
            stubs[key] = []
            for _ in range(THREADS):
                ch = grpc.insecure_channel(addrs[key])
                channels.append(ch)
                stubs[key].append(pb2_grpc.PythonServiceStub(ch))
        for key, _label, tool, expected in TARGETS:  # warmup: threads, channels, server pools
            _throughput_round(pb2, stubs[key], tool, expected, max(5, per_thread // 5))
        for _ in range(rounds):  # round-robin, so drift hits every server alike
            for key, _label, tool, expected in TARGETS:
                wall = _throughput_round(pb2, stubs[key], tool, expected, per_thread)
                samples[key].append(wall / calls)
    finally:
        for ch in channels:
            ch.close()
    return _throughput_rows(
        samples,
        calls,
        f"throughput, {THREADS} Python client threads, per call",
        f"{THREADS} threads \u00d7 {per_thread} calls, a channel per thread; per call = wall / calls; "
        "\u2248 {rate} calls/s (median round); " + PY_CLIENT_NOTE,
        "T",
    )


# ---------------------------------------------------------------- Rust load client rows

# The load client needs no Python: building it without the default `python` feature skips
# pyo3 and the Python boundary, which roughly halves the (re)build of the crate. It builds in
# its own target dir: the crate's cdylib output (deps/libagent_runtime.so) has no hash in its
# name, so a build with other features in target/release would overwrite the Python
# extension's, and a separate dir also does not wait on other builds' lock.
LOAD_TARGET_DIR = REPO_ROOT / "target" / "grpc-load"
BUILD_CMD = [
    "build", "--release", "--example", "grpc_load", "--no-default-features", "--features", "grpc",
    "--target-dir", str(LOAD_TARGET_DIR),
]  # fmt: skip


def _cargo() -> Optional[str]:
    found = shutil.which("cargo")
    if found:
        return found
    home = Path(os.environ.get("CARGO_HOME", str(Path.home() / ".cargo"))) / "bin" / "cargo"
    return str(home) if home.exists() else None


def _build_load_client() -> Tuple[Optional[Path], str]:
    """``cargo build`` the example; returns (binary or None, a note on what happened)."""
    cargo = _cargo()
    if cargo is None:
        return None, "cargo not found"
    print(f"  building the Rust load client: cargo {' '.join(BUILD_CMD)}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [cargo] + BUILD_CMD,
        cwd=str(REPO_ROOT),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a timeout can stop cargo and its rustc children together
    )
    try:
        out, _ = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, f"cargo build timed out after {BUILD_TIMEOUT:.0f} s"
    secs = time.monotonic() - t0
    if proc.returncode != 0:
        errs = [ln for ln in out.splitlines() if ln.startswith("error")] or out.splitlines()[-3:]
        return None, f"cargo build failed (exit {proc.returncode}): " + " / ".join(errs[:3])
    binary = LOAD_TARGET_DIR / "release" / "examples" / "grpc_load"
    if not binary.exists():
        return None, f"cargo build succeeded but {binary} is missing"
    print(f"  load client ready ({secs:.0f} s)", flush=True)
    return binary, f"load client built in {secs:.0f} s"


def _load_run(binary: Path, addr: str, tool: str, expected: Any, calls: int) -> Dict[str, Any]:
    cmd = [str(binary), addr, tool, ARGS_JSON, str(calls), str(CONCURRENCY), json.dumps(expected)]
    p = subprocess.run(
        cmd, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600
    )
    if p.returncode != 0:
        raise RuntimeError(f"grpc_load {tool} @ {addr} failed (exit {p.returncode}): {p.stderr.strip()}")
    r: Dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    if r["errors"] != 0 or r["calls"] != calls:
        raise RuntimeError(f"grpc_load {tool} @ {addr}: {r['errors']} errors in {r['calls']} calls")
    return r


def _rust_load(binary: Optional[Path], why: str, addrs: Dict[str, str], quick: bool) -> List[Row]:
    if binary is None:
        return [
            Row(
                AREA,
                f"Rust load client rows skipped: {why}",
                float("nan"),
                note="examples/grpc_load.rs could not be built; the other rows are unaffected",
            )
        ]
    reps, calls = (3, 4000) if quick else (5, 20000)
    samples: Dict[str, List[float]] = {key: [] for key, *_ in TARGETS}
    for key, _label, tool, expected in TARGETS:  # warmup
        _load_run(binary, addrs[key], tool, expected, max(CONCURRENCY, calls // 10))
    for _ in range(reps):
        for key, _label, tool, expected in TARGETS:
            r = _load_run(binary, addrs[key], tool, expected, calls)
            samples[key].append(float(r["secs"]) * 1e9 / calls)
    rows = _throughput_rows(
        samples,
        calls,
        f"Rust load client, {CONCURRENCY} in flight, per call",
        f"examples/grpc_load.rs (tonic, one connection), {calls} calls, {CONCURRENCY} in flight, "
        "0 errors; per call = wall / calls; \u2248 {rate} calls/s (median run); " + why,
        "L",
    )
    return [rows[NOTE], rows[OURS_PY], rows[OURS_RUST]]


def _throughput_rows(samples: Dict[str, List[float]], calls: int, title: str, note: str, tag: str) -> Dict[str, Row]:
    """Per-call rows for each server; the note's server is the baseline (``tag``) and ours with
    a Python tool carries the \u2265 2\u00d7 throughput target. ``note`` may use ``{rate}``."""
    rows = {}
    for key, label, _tool, _expected in TARGETS:
        per_call = sorted(samples[key])[len(samples[key]) // 2]
        rate = f"{1e9 / per_call:,.0f}"
        rows[key] = row_from_samples(AREA, f"{title}: {label}", samples[key], calls, note=note.replace("{rate}", rate))
    rows[NOTE].tag = tag
    rows[OURS_PY].target = Target(0.5, "ratio")
    rows[OURS_PY].relate(rows[NOTE])
    rows[OURS_RUST].relate(rows[NOTE])
    return rows


# ---------------------------------------------------------------- subprocess per call

# The note's Go RunFunction, as a template: import the module, call the function with the
# JSON-decoded argument list, print the JSON result.
_RUN_FUNCTION_SCRIPT = """
import json
import sys
import {module}

result = {module}.{function}(*json.loads(sys.argv[1]))
print(json.dumps(result))
"""


def make_run_function(temp_dir: str, env: Dict[str, str]) -> Callable[..., Any]:
    """The note's subprocess ``RunFunction(module, function, args...)`` in Python: write a temp
    script, run ``sys.executable script args_json``, parse stdout as JSON."""

    def run_function(module: str, function: str, *args: Any) -> Any:
        script = os.path.join(temp_dir, "run_function.py")
        with open(script, "w") as f:
            f.write(_RUN_FUNCTION_SCRIPT.format(module=module, function=function))
        try:
            p = subprocess.run(
                [sys.executable, script, json.dumps(list(args))],
                check=False,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
        finally:
            os.remove(script)
        if p.returncode != 0:
            raise RuntimeError(f"failed to run Python script: exit {p.returncode}\n{p.stderr}")
        return json.loads(p.stdout)

    return run_function


def _subprocess_row(quick: bool) -> Row:
    temp_dir = tempfile.mkdtemp(prefix="grpc-bench-subproc-")
    try:
        run_function = make_run_function(temp_dir, _env(PYTHONPATH=str(SUPPORT)))
        got = run_function("echo_impl", "echo", VALUE)
        if got != VALUE:
            raise RuntimeError(f"subprocess RunFunction echo returned {got!r}")
        ns = {"run_function": run_function, "value": VALUE}
        m = measure([Case("S", 'run_function("echo_impl", "echo", value)', ns)], quick)["S"]
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return row_from_samples(
        AREA,
        "note's subprocess-per-call RunFunction (temp script, `python script args_json`), echo",
        m.samples,
        m.batch,
        tag="S",
        note="sequential; a fresh sys.executable interpreter per call, JSON over argv/stdout",
    )


# ---------------------------------------------------------------- the area


def _stop_all(servers: Sequence[ServerProcess]) -> List[str]:
    problems = []
    for s in servers:
        rc = s.stop()
        if rc != 0:
            problems.append(f"{s.label} exited with {rc}: {s.output()}")
    return problems


def run(quick: bool) -> List[Row]:
    import grpc

    load_client, built = _build_load_client()  # first, so the build does not overlap any timing
    gen_dir = tempfile.mkdtemp(prefix="grpc-bench-gen-")
    servers: List[ServerProcess] = []
    channels: Dict[str, Any] = {}
    try:
        pb2, pb2_grpc = _generate(gen_dir)
        note_server = _start_note_server(gen_dir)
        servers.append(note_server)
        ours = _start_ours()
        servers.append(ours)
        addrs = {NOTE: note_server.addr, OURS_PY: ours.addr, OURS_RUST: ours.addr}
        stubs = {}
        for key, label, tool, expected in TARGETS:
            channels[key] = grpc.insecure_channel(addrs[key])
            grpc.channel_ready_future(channels[key]).result(timeout=START_TIMEOUT)
            stubs[key] = pb2_grpc.PythonServiceStub(channels[key])
            _check(pb2, stubs[key], tool, expected, label)

        seq = _sequential(pb2, stubs, quick)
        thr = _throughput(pb2, pb2_grpc, addrs, quick)
        for key, label, tool, expected in TARGETS:  # still answering correctly after the load
            _check(pb2, stubs[key], tool, expected, label)
        for ch in channels.values():
            ch.close()
        channels.clear()
        load = _rust_load(load_client, built, addrs, quick)
    finally:
        for ch in channels.values():
            ch.close()
        problems = _stop_all(servers)
        shutil.rmtree(gen_dir, ignore_errors=True)
    if problems:
        raise RuntimeError("server shutdown: " + "; ".join(problems))

    sub = _subprocess_row(quick)
    vs_sub = row_from_samples(
        AREA,
        "sequential latency, ours with Python tool bench.echo, related to subprocess per call",
        seq[OURS_PY].samples,
        seq[OURS_PY].batch,
        note="same figures as the sequential ours/Python row, related to [S]",
    ).relate(sub)
    return [
        seq[NOTE],
        seq[OURS_PY],
        seq[OURS_RUST],
        thr[NOTE],
        thr[OURS_PY],
        thr[OURS_RUST],
        *load,
        sub,
        vs_sub,
    ]
