"""Isolated tools: a pool of worker processes runs them; crashes, exits, hangs and memory
blowups cost a worker (killed and replaced), never the host, and everything else behaves as
for in-process tools."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import agent_runtime as ar
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import iso_tools


def configure(**kw: Any) -> None:
    base: dict = {"size": 2, "min_workers": 1, "idle_timeout": 60.0}
    base.update(kw)
    ar.configure_isolation(**base)


@pytest.fixture(autouse=True)
def pool_defaults():
    configure()
    yield
    configure()


def alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(") ", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.01)
    return False


def zombie_children() -> List[str]:
    """Unreaped children of this process, as "pid (command)"."""
    me = str(os.getpid())
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                comm, rest = f.read().split(" (", 1)[1].rsplit(") ", 1)
        except (OSError, IndexError, ValueError):
            continue
        fields = rest.split()
        if fields[0] == "Z" and fields[1] == me:
            out.append(f"{d} ({comm})")
    return out


def lasting_zombies(grace: float = 5.0) -> List[str]:
    """Zombie children still unreaped after `grace` seconds (reaping is asynchronous)."""
    deadline = time.monotonic() + grace
    while zombie_children() and time.monotonic() < deadline:
        time.sleep(0.01)
    return zombie_children()


def worker_pids() -> List[int]:
    return [w["pid"] for w in ar.isolation_stats()["workers"]]


def read_pid(path: Any, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        if text:
            return int(text)
        time.sleep(0.01)
    raise AssertionError(f"{path} was never written")


# ---------------------------------------------------------------- semantics


def test_echo_runs_in_another_process_with_the_same_schema():
    assert ar.call("iso_echo", {"value": {"a": [1, "x", None]}}) == {"a": [1, "x", None]}
    pid = ar.call("iso_pid")
    assert pid != os.getpid() and pid in worker_pids()
    spec = ar.default_registry().spec("iso_sleep")
    assert spec["description"].startswith("Sleep; optionally write")
    assert spec["input_schema"]["properties"]["seconds"] == {"type": "number"}
    assert spec["input_schema"]["required"] == ["seconds"]
    with pytest.raises(ar.InvalidArguments) as ei:
        ar.call("iso_sleep", {"seconds": "long"})
    assert ei.value.path == "seconds"
    assert ar.call("iso_bytes", {"data": b"abc"}) == b"cba"


def test_exceptions_keep_type_message_and_remote_traceback():
    with pytest.raises(ValueError, match="^bad value$") as ei:
        ar.call("iso_raise", {"kind": "value", "message": "bad value"})
    tb = ei.value.remote_traceback
    assert "in iso_raise" in tb and 'raise ValueError(message)' in tb
    assert isinstance(ei.value.__cause__, Exception) and "raise ValueError(message)" in str(ei.value.__cause__)
    with pytest.raises(iso_tools.CustomError) as ei2:
        ar.call("iso_raise", {"kind": "custom", "message": "custom text"})
    assert ei2.value.code == 7 and ei2.value.args == (7, "custom text")
    with pytest.raises(KeyError):
        ar.call("iso_raise", {"kind": "key", "message": "k"})


def test_print_does_not_corrupt_the_reply_pipe():
    for _ in range(3):
        assert ar.call("iso_print", {"text": "hello from the worker"}) == "hello from the worker"


def test_progress_reaches_the_caller():
    seen = []
    assert ar.call("iso_progress", {"steps": 3}, on_progress=lambda *a: seen.append(a)) == "done"
    assert seen == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]
    task = ar.spawn("iso_progress", {"steps": 2})
    assert task.result(timeout=30) == "done"


def test_call_async_and_spawn():
    async def main() -> Any:
        return await asyncio.gather(
            ar.call_async("iso_echo", {"value": 1}),
            ar.call_async("iso_async_sleep", {"seconds": 0.01}),
        )

    one, slept = asyncio.run(main())
    assert one == 1 and slept["slept"] == 0.01 and slept["pid"] in worker_pids()
    assert ar.spawn("iso_echo", {"value": "x"}).result(timeout=30) == "x"


# ---------------------------------------------------------------- faults


def test_segfault_is_worker_crashed_with_signal_and_stderr():
    with pytest.raises(ar.WorkerCrashed) as ei:
        ar.call("iso_segfault")
    e = ei.value
    assert e.tool == "iso_segfault" and e.signal == signal.SIGSEGV and e.exit_code is None
    assert e.detail == "killed by signal 11 (SIGSEGV)"
    assert str(e).startswith("worker process of tool 'iso_segfault' crashed: killed by signal 11 (SIGSEGV)")
    assert "Segmentation fault" in e.stderr_tail and "in iso_segfault" in e.stderr_tail
    assert ar.call("iso_echo", {"value": "still serving"}) == "still serving"


def test_os_exit_is_worker_crashed_with_exit_code():
    with pytest.raises(ar.WorkerCrashed) as ei:
        ar.call("iso_exit", {"code": 3})
    assert ei.value.exit_code == 3 and ei.value.signal is None
    assert str(ei.value) == "worker process of tool 'iso_exit' crashed: exited with code 3"
    assert ar.call("iso_echo", {"value": 2}) == 2


def test_endless_loop_times_out_and_its_worker_is_replaced(tmp_path):
    with pytest.raises(ar.ToolTimeout) as ei:
        ar.call("iso_loop", timeout=0.3)
    assert ei.value.tool == "iso_loop"
    marker = tmp_path / "pid"
    # A worker is ready (so the call below starts at once rather than waiting for one).
    assert ar.call("iso_echo", {"value": 0}) == 0
    with pytest.raises(ar.ToolTimeout):
        ar.call("iso_sleep", {"seconds": 30, "marker": str(marker)}, timeout=2.0)
    pid = read_pid(marker)
    assert wait_gone(pid), f"timed-out worker {pid} still exists"
    with pytest.raises(ar.ToolTimeout):
        ar.call("iso_default_timeout")
    assert ar.call("iso_echo", {"value": 3}) == 3


def test_memory_limit_kills_the_worker_with_a_clear_error():
    configure(max_rss_mb=200)
    with pytest.raises(ar.WorkerCrashed) as ei:
        ar.call("iso_hog", {"chunk_mb": 16}, timeout=60)
    assert ei.value.detail.startswith("exceeded the memory limit: RSS ")
    assert ei.value.detail.endswith(" MB > max_rss_mb=200")
    assert ar.call("iso_echo", {"value": 4}) == 4


def test_cancelling_a_sync_call_kills_its_worker(tmp_path):
    marker = tmp_path / "pid"
    task = ar.spawn("iso_sleep", {"seconds": 30, "marker": str(marker)})
    pid = read_pid(marker)
    assert alive(pid)
    task.cancel()
    with pytest.raises(ar.Cancelled):
        task.result(timeout=10)
    assert wait_gone(pid), f"cancelled worker {pid} still exists"
    assert ar.call("iso_echo", {"value": 5}) == 5


def test_cancelling_an_async_call_cancels_it_inside_the_worker(tmp_path):
    marker = tmp_path / "state"

    async def main() -> None:
        t = asyncio.ensure_future(ar.call_async("iso_async_sleep", {"seconds": 30, "marker": str(marker)}))
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text() == "started") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    before = set(worker_pids())
    asyncio.run(main())
    deadline = time.monotonic() + 10
    while marker.read_text() != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.read_text() == "cancelled"
    # Cancelled in place: the worker that ran it lives on.
    assert set(worker_pids()) & before


def test_concurrent_healthy_calls_succeed_while_others_crash():
    configure(size=3)

    def healthy(i: int) -> Any:
        return ar.call("iso_echo", {"value": i})

    def crashing(i: int) -> str:
        try:
            if i % 2:
                ar.call("iso_segfault")
            else:
                ar.call("iso_exit", {"code": 9})
        except ar.WorkerCrashed as e:
            return e.detail
        return "no crash"

    with ThreadPoolExecutor(16) as ex:
        bad = [ex.submit(crashing, i) for i in range(6)]
        good = [ex.submit(healthy, i) for i in range(50)]
        assert [f.result(timeout=120) for f in good] == list(range(50))
        details = [f.result(timeout=120) for f in bad]
    assert details.count("killed by signal 11 (SIGSEGV)") == 3
    assert details.count("exited with code 9") == 3

    async def many() -> List[Any]:
        return await asyncio.gather(*(ar.call_async("iso_async_sleep", {"seconds": 0.05}) for _ in range(50)))

    assert len(asyncio.run(many())) == 50
    assert ar.isolation_stats()["crashed"] >= 6


# ---------------------------------------------------------------- pool lifecycle


def test_workers_are_recycled_after_max_calls():
    configure(max_calls=2, size=1)
    pids = [ar.call("iso_pid") for _ in range(6)]
    for p in set(pids):
        assert pids.count(p) <= 2, pids
    assert len(set(pids)) >= 3
    assert ar.isolation_stats()["recycled"] >= 2


def test_registration_errors_for_unimportable_functions():
    def local_tool() -> int:
        return 1

    with pytest.raises(ar.RegistrationError, match="inside a function"):
        ar.tool(isolated=True)(local_tool)
    ns: dict = {"__name__": "__main__"}
    exec("def main_tool() -> int:\n    return 1\n", ns)  # noqa: S102 - a function whose module is __main__
    with pytest.raises(ar.RegistrationError, match="in __main__"):
        ar.tool(isolated=True)(ns["main_tool"])
    assert "local_tool" not in ar.default_registry() and "main_tool" not in ar.default_registry()


def test_shutdown_kills_and_reaps_every_worker():
    ar.call("iso_echo", {"value": 1})
    pids = worker_pids()
    assert pids
    ar.shutdown()
    for p in pids:
        assert wait_gone(p), f"worker {p} survived shutdown"
    assert lasting_zombies() == []
    assert ar.isolation_stats()["workers"] == []
    # The next call starts the pool again.
    assert ar.call("iso_echo", {"value": "again"}) == "again"


def open_fds() -> Dict[str, str]:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return out


def test_no_zombies_or_fd_leaks_after_crashes():
    ar.shutdown()
    before = open_fds()
    fds = len(before)
    for _ in range(3):
        with pytest.raises(ar.WorkerCrashed):
            ar.call("iso_exit", {"code": 1})
        with pytest.raises(ar.WorkerCrashed):
            ar.call("iso_segfault")
    assert lasting_zombies() == []
    ar.shutdown()
    # Every worker's pipes were closed with it (a replacement whose start the shutdown cut
    # short is reaped by its own thread just after).
    deadline = time.monotonic() + 5
    while len(open_fds()) > fds and time.monotonic() < deadline:
        time.sleep(0.01)
    after = open_fds()
    assert len(after) <= fds, {fd: t for fd, t in after.items() if before.get(fd) != t}


def test_interpreter_exit_reaps_workers(tmp_path):
    code = (
        "import sys, agent_runtime as ar\n"
        f"sys.path.insert(0, {HERE!r})\n"
        "import iso_tools\n"
        "ar.call('iso_echo', {'value': 1})\n"
        "print(' '.join(str(w['pid']) for w in ar.isolation_stats()['workers']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert pids
    for p in pids:
        assert wait_gone(p), f"worker {p} outlived its host"


# ---------------------------------------------------------------- CLI and gRPC


def _env() -> dict:
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(ar.__file__)))
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([pkg_parent, HERE])
    return e


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_runtime", *args], capture_output=True, text=True, timeout=120, env=_env(), cwd=HERE, check=False
    )


def test_cli_isolate_flag():
    out = _cli("--isolate", "sample_tools", "call", "add", '{"a": 1, "b": 2}')
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    crash = _cli("--import", "iso_tools", "call", "iso_exit", '{"code": 4}')
    assert crash.returncode == 1
    assert "worker process of tool 'iso_exit' crashed: exited with code 4" in crash.stderr
