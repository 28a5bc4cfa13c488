"""Hostile inputs against isolated tools and the worker pool: a worker must never run code in
the host, bad results fail one call (not the worker), forks cannot answer for the worker or
hide its end, a stubborn async call does not take healthy ones down unannounced, and a broken
worker or bad settings give clear errors."""
from __future__ import annotations

import asyncio
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any, List

import agent_runtime as ar
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import iso_tools_worker
from test_isolation import configure, wait_gone, worker_pids


@pytest.fixture(autouse=True)
def pool_defaults():
    configure()
    yield
    configure()


# ---------------------------------------------------------------- exceptions are not unpickled


def test_a_crafted_reduce_never_runs_in_the_host(tmp_path):
    marker = tmp_path / "owned"
    with pytest.raises(iso_tools_worker.EvilError) as ei:
        ar.call("iso_evil", {"marker": str(marker)})
    # Rebuilt as EvilError(*args) from a class the host imported, never from a pickle.
    assert ei.value.args == (str(marker),) and ei.value.marker == str(marker)
    assert "raise EvilError(marker)" in ei.value.remote_traceback
    assert not marker.exists()


def test_exception_classes_are_never_imported_on_the_workers_say_so(tmp_path, monkeypatch):
    name = f"ar_adv_mod_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(
        "import os, pathlib\n"
        f"pathlib.Path({str(tmp_path)!r}, f'imported-{{os.getpid()}}').touch()\n"
        "class Err(Exception):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    configure()  # workers see the new sys.path
    with pytest.raises(ar.ToolError) as ei:
        ar.call("iso_raise_from", {"module": name, "message": "from the worker"})
    e = ei.value
    assert not isinstance(e, ValueError)
    assert str(e) == "Err: from the worker" and e.type_name == "Err"
    assert "raise importlib.import_module(module).Err(message)" in e.traceback
    assert name not in sys.modules
    assert not (tmp_path / f"imported-{os.getpid()}").exists()
    assert list(tmp_path.glob("imported-*")), "the worker imported it"
    # Once the host imported the module itself, the same class comes back.
    mod = __import__(name)
    with pytest.raises(mod.Err, match="^again$"):
        ar.call("iso_raise_from", {"module": name, "message": "again"})


def test_exceptions_that_cannot_be_rebuilt_become_tool_errors():
    # A tool's sys.exit() must not stop the host.
    with pytest.raises(ar.ToolError) as ei:
        ar.call("iso_raise_kind", {"kind": "exit"})
    assert ei.value.type_name == "SystemExit" and str(ei.value) == "SystemExit: 3"
    # Arguments that are not plain JSON.
    with pytest.raises(ar.ToolError) as ei:
        ar.call("iso_raise_kind", {"kind": "bytes"})
    assert ei.value.type_name == "ValueError" and "\\x00\\xff" in str(ei.value)
    # A class local to a function, with a broken __str__.
    with pytest.raises(ar.ToolError) as ei:
        ar.call("iso_raise_kind", {"kind": "badstr"})
    assert "Unprintable" in ei.value.type_name and "unprintable" in str(ei.value)
    # Big integers in args come back exactly; lone surrogates do not break the frame.
    with pytest.raises(ValueError) as ei2:
        ar.call("iso_raise_kind", {"kind": "bigint"})
    assert ei2.value.args == (2**100 + 1,)
    with pytest.raises(ValueError, match="bad"):
        ar.call("iso_raise_kind", {"kind": "surrogate"})
    with pytest.raises(KeyError):
        ar.call("iso_raise_kind", {"kind": "key"})


def test_rebuild_exception_refuses_what_the_host_has_not_imported():
    from agent_runtime import _worker

    assert _worker.rebuild_exception("builtins", "ValueError", "[1, 2]", None).args == (1, 2)
    for module, qualname, args in [
        ("os", "system", '["true"]'),  # not an exception class
        ("builtins", "SystemExit", "[1]"),  # BaseException only
        ("builtins", "KeyboardInterrupt", "[]"),
        ("never_imported_module_xyz", "Err", "[]"),
        ("builtins", "ValueError.__class__", "[]"),
        ("builtins", "<locals>.X", "[]"),
        ("builtins", "ValueError", "not json"),
        ("builtins", "ValueError", '{"a": 1}'),
        ("builtins", "UnicodeDecodeError", '["x"]'),  # refuses these args
        ("builtins", "ValueError", None),
    ]:
        assert _worker.rebuild_exception(module, qualname, args, None) is None, (module, qualname)
    assert "never_imported_module_xyz" not in sys.modules


def test_no_unpickling_anywhere_in_the_package():
    root = os.path.dirname(os.path.abspath(ar.__file__))
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                    text = fh.read()
                for bad in ("pickle.loads", "pickle.load(", "marshal.loads", "import pickle"):
                    assert bad not in text, f"{f}: {bad}"


# ---------------------------------------------------------------- results that cannot cross


def test_unencodable_results_are_conversion_errors_and_the_worker_survives():
    pid = ar.call("iso_pid_w")
    for kind, path in [("deep", "result"), ("nan", "result"), ("object", "result"), ("cycle", "result")]:
        with pytest.raises(ar.ConversionError) as ei:
            ar.call("iso_result", {"kind": kind})
        assert ei.value.path == path, kind
    # Deeper than the host reads (127 levels) but shallow enough for Python's encoder.
    with pytest.raises(ar.ConversionError, match="nested too deeply"):
        ar.call("iso_result", {"kind": "deep", "depth": 300})
    assert ar.call("iso_result", {"kind": "deep", "depth": 100}) is not None
    assert ar.call("iso_pid_w") == pid


def test_big_ints_cross_exactly_or_raise_conversion_error():
    with pytest.raises(ar.ConversionError) as ei:
        ar.call("iso_result", {"kind": "bigint"})
    assert ei.value.path == "result" and "64 bits" in str(ei.value)
    with pytest.raises(ar.ConversionError) as ei:
        ar.call("iso_result", {"kind": "nested_bigint"})
    assert ei.value.path == "result.a[1]"
    assert ar.call("iso_result", {"kind": "edges"}) == [2**64 - 1, -(2**63), 10**18, "12345678901234567890123"]
    # Argument direction: refused in the host before any worker sees it.
    with pytest.raises(ar.ConversionError):
        ar.call("iso_echo", {"value": 2**100 + 1})
    assert ar.call("iso_echo", {"value": 2**64 - 1}) == 2**64 - 1
    assert ar.call("iso_echo", {"value": -(2**63)}) == -(2**63)


def test_progress_that_json_cannot_carry_does_not_fail_the_call():
    seen: List[Any] = []
    assert ar.call("iso_bad_progress", on_progress=lambda *a: seen.append(a)) == "done"
    assert seen == [(1.0, None, "inf total"), (2.0, 2.0, "bad \\udcff text")]


def test_stderr_without_newlines_is_not_buffered_whole(capfd):
    with pytest.raises(ar.WorkerCrashed) as ei:
        ar.call("iso_stderr_flood", {"mb": 8})
    assert ei.value.exit_code == 1
    # Kept in 16 KiB pieces, the last 40 of them at most.
    assert 0 < len(ei.value.stderr_tail) <= 40 * (16 * 1024 + 1)
    capfd.readouterr()


# ---------------------------------------------------------------- forks


@pytest.mark.parametrize("raw", [False, True])
def test_a_worker_that_forks_and_exits_is_worker_crashed_at_once(tmp_path, raw):
    marker = tmp_path / "child"
    # WorkerCrashed, not the ToolTimeout a child holding the reply pipe used to cause.
    with pytest.raises(ar.WorkerCrashed) as ei:
        ar.call("iso_fork_exit", {"marker": str(marker), "raw": raw}, timeout=60)
    assert ei.value.exit_code == 0 and ei.value.tool == "iso_fork_exit"
    # Its child (which may hold the reply pipe) went with it.
    child = int(marker.read_text())
    assert wait_gone(child), f"forked child {child} survived"
    assert ar.call("iso_echo", {"value": 1}) == 1


@pytest.mark.parametrize("raw", [False, True])
def test_only_the_worker_answers_after_a_fork(raw):
    for _ in range(4):
        pid = ar.call("iso_fork_both", {"raw": raw})
        assert pid in worker_pids(), (pid, ar.isolation_stats())
    assert ar.call("iso_echo", {"value": "ok"}) == "ok"


# ---------------------------------------------------------------- stubborn async calls


async def nap_running(seconds: float, marker: Path) -> asyncio.Future[Any]:
    """An `iso_async_nap` call, once it runs in a worker (its pid written to `marker`)."""
    nap = asyncio.ensure_future(ar.call_async("iso_async_nap", {"seconds": seconds, "marker": str(marker)}))
    while not marker.exists():
        await asyncio.sleep(0.01)
    return nap


def test_an_async_call_ignoring_cancellation_does_not_take_a_healthy_call_down(tmp_path):
    configure(size=1, cancel_grace=0.3)
    marker = tmp_path / "pid"

    async def main() -> Any:
        healthy = await nap_running(1.5, marker)
        with pytest.raises(ar.ToolTimeout):
            await ar.call_async("iso_async_stubborn", {"seconds": 30}, timeout=0.2)
        return await healthy

    pid = asyncio.run(main())
    assert pid == int(marker.read_text())
    # The stubborn task's worker goes once nothing else runs on it.
    assert wait_gone(pid), "the worker with the stuck task was not replaced"
    assert ar.call("iso_echo", {"value": 2}) == 2


def test_a_blocked_event_loop_kills_the_worker_and_names_the_reason(tmp_path):
    configure(size=1, cancel_grace=0.3)
    marker = tmp_path / "pid"

    async def main() -> Any:
        healthy = await nap_running(60, marker)
        with pytest.raises(ar.ToolTimeout):
            await ar.call_async("iso_async_block", {"seconds": 60}, timeout=0.2)
        with pytest.raises(ar.WorkerCrashed) as ei:
            await asyncio.wait_for(healthy, 30)
        return ei.value

    e = asyncio.run(main())
    assert e.tool == "iso_async_nap"
    assert "a cancelled call to 'iso_async_block' did not stop within 0.3s" in e.detail
    assert "event loop stopped answering" in e.detail
    assert wait_gone(int(marker.read_text()))
    assert ar.call("iso_echo", {"value": 3}) == 3


# ---------------------------------------------------------------- a broken worker program

FAKE = r'''
import json, os, struct, sys, time
mode = os.environ["FAKE_MODE"]
inp, out = sys.stdin.buffer, sys.stdout.buffer
def frame(body):
    out.write(struct.pack("<I", len(body)) + body); out.flush()
if mode == "closestdin":
    os.close(0)
frame(json.dumps({"t": "ready", "pid": os.getpid()}).encode())
if mode == "closestdin":
    time.sleep(60)
while True:
    head = inp.read(4)
    if len(head) < 4:
        sys.exit(0)
    (n,) = struct.unpack("<I", head)
    msg = json.loads(inp.read(n))
    if msg.get("op") != "call":
        continue
    rid = msg["id"]
    if mode == "garbage":
        out.write(b"hello, this is not a frame\n"); out.flush()
    elif mode == "truncated":
        out.write(struct.pack("<I", 100) + b'{"t":"ok"'); out.flush(); os._exit(0)
    elif mode == "badjson":
        frame(b"{not json")
    elif mode == "unknown":
        frame(json.dumps({"t": "ok", "id": rid + 1000, "value": "stray"}).encode())
        frame(json.dumps({"t": "progress", "id": 999999, "done": 1}).encode())
        frame(json.dumps({"t": "pong", "id": 12345}).encode())
        frame(json.dumps({"t": "err", "id": rid + 7, "type": "X", "message": "m"}).encode())
        frame(json.dumps({"t": "ok", "id": rid, "value": "right"}).encode())
    elif mode == "wrongtype":
        frame(json.dumps({"t": "ok", "id": "seven", "value": 1}).encode())
        frame(json.dumps({"t": "ok", "id": rid, "value": "after"}).encode())
    elif mode == "huge":
        out.write(struct.pack("<I", 200 * 1024 * 1024) + b"{"); out.flush(); time.sleep(60)
    elif mode == "closestdout":
        os.close(1); time.sleep(60)
'''


def fake_worker(tmp_path, mode: str) -> None:
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE)
    launcher = tmp_path / "fake_python"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {script}\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    configure(python=str(launcher), env={"FAKE_MODE": mode}, min_workers=0, size=1)


@pytest.mark.parametrize(
    "mode, detail",
    [
        ("garbage", "broken reply stream: frame of"),
        ("truncated", "broken reply stream: stream ended inside a frame"),
        ("badjson", "undecodable reply frame"),
        ("closestdin", "cannot send the call to the worker"),
        ("closestdout", "closed its reply pipe but did not exit"),
    ],
)
def test_a_worker_speaking_garbage_is_worker_crashed(tmp_path, mode, detail):
    fake_worker(tmp_path, mode)
    with pytest.raises(ar.WorkerCrashed) as ei:
        ar.call("iso_echo", {"value": 1}, timeout=60)
    assert detail in ei.value.detail, ei.value.detail
    configure()
    assert ar.call("iso_echo", {"value": "recovered"}) == "recovered"


def test_stray_and_mistyped_replies_are_ignored(tmp_path):
    fake_worker(tmp_path, "unknown")
    assert ar.call("iso_echo", {"value": 1}, timeout=30) == "right"
    fake_worker(tmp_path, "wrongtype")
    with pytest.raises(ar.WorkerCrashed, match="undecodable reply frame"):
        ar.call("iso_echo", {"value": 1}, timeout=30)


def test_a_huge_length_prefix_is_not_allocated(tmp_path):
    fake_worker(tmp_path, "huge")
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ar.ToolTimeout):
        ar.call("iso_echo", {"value": 1}, timeout=1.0)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb


# ---------------------------------------------------------------- settings


def test_a_missing_cwd_is_blamed_on_the_cwd(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    configure(cwd=str(missing), min_workers=0)
    with pytest.raises(ar.AgentRuntimeError) as ei:
        ar.call("iso_echo", {"value": 1})
    assert str(missing) in str(ei.value) and "working directory" in str(ei.value)
    configure()
    assert ar.call("iso_echo", {"value": 1}) == 1


@pytest.mark.parametrize(
    "kw, what",
    [
        ({"env": {"A": "x\0y"}}, "NUL"),
        ({"env": {"A=B": "x"}}, "'='"),
        ({"env": {"": "x"}}, "empty"),
        ({"cwd": "/tmp/a\0b"}, "NUL"),
        ({"python": "/usr/bin/py\0thon"}, "NUL"),
    ],
)
def test_nul_bytes_and_bad_names_in_settings_are_value_errors(kw, what):
    with pytest.raises(ValueError, match=what):
        configure(**kw)
    assert ar.call("iso_echo", {"value": 1}) == 1


NUMBERS = [math.nan, math.inf, -math.inf, 1e300, -1, 0, -1.5, 2**70]
PARAMS = [
    "size",
    "min_workers",
    "max_calls",
    "max_rss_mb",
    "recycle_rss_mb",
    "idle_timeout",
    "max_async_per_worker",
    "start_timeout",
    "cancel_grace",
]


@pytest.mark.parametrize("param", PARAMS)
def test_every_numeric_setting_takes_hostile_numbers_without_panicking(param):
    outcomes: List[str] = []
    for v in NUMBERS:
        try:
            configure(**{param: v})
            outcomes.append("ok")
        except Exception as e:  # noqa: BLE001 - PanicException is not an Exception: it would escape
            assert type(e).__name__ != "PanicException"
            assert str(e), (param, v)
            outcomes.append(type(e).__name__)
        finally:
            configure()
    # Seconds: NaN, negative and zero are refused by name; huge means "forever".
    if param in ("idle_timeout", "start_timeout", "cancel_grace"):
        assert outcomes[0] == "ValueError" and outcomes[4] == "ValueError" and outcomes[5] == "ValueError"
        assert outcomes[1] == "ok" and outcomes[3] == "ok", outcomes
        with pytest.raises(ValueError, match=param):
            configure(**{param: math.nan})
    if param in ("size", "max_calls", "max_rss_mb", "recycle_rss_mb", "max_async_per_worker"):
        assert outcomes[5] == "ValueError", outcomes
    assert ar.call("iso_echo", {"value": 1}) == 1
