"""Mounting other MCP servers (issue 16): the Python SDK's MCPServer over stdio and HTTP, a
hand-written misbehaving server; calls, errors, progress, cancellation, crashes, list changes,
collisions, concurrency."""

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

pytest.importorskip("mcp.server.mcpserver")

import agent_runtime as ar
from agent_runtime import Registry, _native
from servers import free_port, listening

HERE = Path(__file__).parent
UPSTREAM = str(HERE / "mcphost_upstream.py")
RAW = str(HERE / "mcphost_raw_server.py")


def wait_until(pred: Callable[[], Any], timeout: float = 20.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception:
            if time.monotonic() > end:
                raise
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def reg() -> Registry:
    return Registry()


@pytest.fixture
def py(reg: Registry) -> Iterator[Any]:
    m = ar.mount_mcp("py", command=sys.executable, args=[UPSTREAM, "stdio"], registry=reg)
    yield m
    m.close()


@pytest.fixture
def http_url() -> Iterator[str]:
    port = free_port()
    with listening([sys.executable, UPSTREAM, "http", str(port)], port, "upstream"):
        yield f"http://127.0.0.1:{port}/mcp"


def test_tools_appear_with_their_schemas_and_are_called(reg: Registry, py: Any) -> None:
    assert {"py.add", "py.echo", "py.slow", "py.fail"} <= set(py.tools())
    assert set(py.tools()) <= set(reg.names())
    spec = reg.spec("py.add")
    assert spec["description"] == "Add two integers."
    assert set(spec["input_schema"]["properties"]) == {"a", "b"}
    assert spec["input_schema"]["required"] == ["a", "b"]
    assert reg.call("py.add", {"a": 2, "b": 40}) == {"result": 42}
    assert reg.call("py.echo", {"text": "héllo"}) == {"result": "héllo"}
    assert py.server == "py" and py.prefix == "py" and py.connected


def test_arguments_are_validated_before_the_upstream_sees_them(reg: Registry, py: Any) -> None:
    with pytest.raises(ar.InvalidArguments) as e:
        reg.call("py.add", {"a": "two", "b": 1})
    assert "a" in str(e.value)


def test_upstream_error_result_is_a_tool_error_with_its_text(reg: Registry, py: Any) -> None:
    with pytest.raises(ar.ToolError) as e:
        reg.call("py.fail", {"message": "upstream boom"})
    assert "upstream boom" in str(e.value)
    # The connection is still fine.
    assert reg.call("py.add", {"a": 1, "b": 1}) == {"result": 2}


def test_upstream_progress_reaches_the_caller(reg: Registry, py: Any) -> None:
    seen = []
    out = reg.call("py.slow", {"steps": 3}, on_progress=lambda *a: seen.append(a))
    assert out == {"result": "done"}
    assert [s[0] for s in seen] == [1, 2, 3]
    assert all(s[1] == 3 for s in seen)


def test_timeout_cancels_the_upstream_call(reg: Registry, py: Any, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    with pytest.raises(ar.ToolTimeout):
        reg.call("py.hang", {"marker": str(marker)}, timeout=0.5)
    wait_until(marker.exists)
    assert marker.read_text() == "cancelled"


def test_task_cancel_sends_cancelled_upstream(reg: Registry, py: Any, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled"
    t = reg.spawn("py.hang", {"marker": str(marker)})
    time.sleep(0.3)
    assert t.cancel()
    with pytest.raises(ar.Cancelled):
        t.result(10)
    wait_until(marker.exists)


def test_crash_mid_call_fails_the_call_and_the_child_is_restarted(reg: Registry, py: Any) -> None:
    first = reg.call("py.pid")["result"]
    with pytest.raises(ar.ToolError) as e:
        reg.call("py.crash", timeout=30)
    assert "'py'" in str(e.value)
    assert not alive(first)
    second = wait_until(lambda: reg.call("py.pid")["result"])
    assert second != first
    assert py.connected


def test_reconnect_restarts_and_close_unmounts(reg: Registry) -> None:
    m = ar.mount_mcp("py", command=sys.executable, args=[UPSTREAM, "stdio"], registry=reg)
    first = reg.call("py.pid")["result"]
    m.reconnect()
    second = reg.call("py.pid")["result"]
    assert second != first
    wait_until(lambda: not alive(first))
    m.close()
    assert not any(n.startswith("py.") for n in reg.names())
    wait_until(lambda: not alive(second))
    with pytest.raises(ar.ToolNotFound):
        reg.call("py.pid")
    with pytest.raises(ar.AgentRuntimeError):
        m.reconnect()


def test_tool_list_changes_update_the_registry(reg: Registry, py: Any) -> None:
    assert reg.call("py.grow", {"name": "extra1"}) == {"result": "added"}
    wait_until(lambda: "py.extra1" in reg)
    assert reg.call("py.extra1") == {"result": "extra extra1"}
    assert "py.extra1" in py.tools()
    reg.call("py.shrink", {"name": "extra1"})
    wait_until(lambda: "py.extra1" not in reg)
    assert "py.extra1" not in py.tools()


def test_colliding_mounts_are_refused_naming_both(reg: Registry, py: Any) -> None:
    with pytest.raises(ar.RegistrationError) as e:
        ar.mount_mcp("py", command=sys.executable, args=[UPSTREAM, "stdio"], registry=reg)
    msg = str(e.value)
    assert "py.add" in msg and "MCP server 'py'" in msg
    reg.register(lambda: 1, "add")
    with pytest.raises(ar.RegistrationError) as e:
        ar.mount_mcp("", command=sys.executable, args=[UPSTREAM, "stdio"], registry=reg)
    assert "'add' already in the registry" in str(e.value)
    # The first mount is untouched.
    assert reg.call("py.add", {"a": 1, "b": 2}) == {"result": 3}


def test_empty_prefix_keeps_names(reg: Registry) -> None:
    with ar.mount_mcp("", command=sys.executable, args=[UPSTREAM, "stdio"], registry=reg) as m:
        assert "add" in m.tools() and "add" in reg
        assert reg.call("add", {"a": 1, "b": 2}) == {"result": 3}
    assert "add" not in reg


def test_unreachable_servers_fail_to_mount_clearly(reg: Registry) -> None:
    with pytest.raises(ar.AgentRuntimeError) as e:
        ar.mount_mcp("x", command="/nonexistent/server", registry=reg)
    assert "'x'" in str(e.value) and "/nonexistent/server" in str(e.value)
    with pytest.raises(ar.AgentRuntimeError):
        ar.mount_mcp("y", url=f"http://127.0.0.1:{free_port()}/mcp", registry=reg)
    with pytest.raises(ValueError):
        ar.mount_mcp("z", registry=reg)
    assert len(reg) == 0


def test_malformed_upstream_and_exit_mid_call_never_hang(reg: Registry) -> None:
    with ar.mount_mcp("raw", command=sys.executable, args=[RAW], registry=reg):
        assert reg.call("raw.ok") == "fine"
        with pytest.raises(ar.AgentRuntimeError) as e:
            reg.call("raw.garbage", timeout=20)
        assert "raw" in str(e.value)
        with pytest.raises(ar.ToolError) as e:
            reg.call("raw.exit", timeout=20)
        assert "MCP server 'raw'" in str(e.value)
        assert wait_until(lambda: reg.call("raw.ok") == "fine")


def test_upstream_logs_reach_python_logging(reg: Registry, py: Any, caplog: Any) -> None:
    # The notification arrives on a tokio thread; the record is handed to a Python thread
    # (pyo3-log alone would take the GIL right there, on the tokio worker).
    on_tokio: List[bool] = []

    class Where(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            on_tokio.append(_native._on_tokio_thread())

    where = Where()
    logging.getLogger("agent_runtime").addHandler(where)
    try:
        with caplog.at_level(logging.INFO, logger="agent_runtime"):
            assert reg.call("py.chatty") == {"result": "ok"}
            assert wait_until(lambda: any("hello from upstream" in r.getMessage() for r in caplog.records))
    finally:
        logging.getLogger("agent_runtime").removeHandler(where)
    assert on_tokio and not any(on_tokio), on_tokio


def test_streamable_http_upstream(reg: Registry, http_url: str) -> None:
    with ar.mount_mcp("web", url=http_url, headers={"X-Test": "1"}, registry=reg) as m:
        assert "web.add" in m.tools()
        assert reg.call("web.add", {"a": 20, "b": 22}) == {"result": 42}
        with pytest.raises(ar.ToolError) as e:
            reg.call("web.fail", {"message": "over http"})
        assert "over http" in str(e.value)


def test_hundred_concurrent_calls_across_two_upstreams(reg: Registry, py: Any, http_url: str) -> None:
    with ar.mount_mcp("web", url=http_url, registry=reg):
        tasks = [
            (i, reg.spawn("py.add" if i % 2 else "web.add", {"a": i, "b": 1000}))
            for i in range(100)
        ]
        for i, t in tasks:
            assert t.result(60) == {"result": i + 1000}


def _children_states() -> list:
    me = str(os.getpid())
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[1] == me:
            out.append(fields[0])
    return out


def test_no_leaked_fds_or_zombies_across_mounts(reg: Registry) -> None:
    def cycle() -> None:
        m = ar.mount_mcp("c", command=sys.executable, args=[UPSTREAM, "stdio"], registry=reg)
        assert reg.call("c.add", {"a": 1, "b": 1}) == {"result": 2}
        m.reconnect()
        assert reg.call("c.add", {"a": 1, "b": 2}) == {"result": 3}
        m.close()

    cycle()
    wait_until(lambda: "Z" not in _children_states())
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(4):
        cycle()
    wait_until(lambda: "Z" not in _children_states())
    wait_until(lambda: len(os.listdir("/proc/self/fd")) <= fds)


def test_close_fails_in_flight_calls(reg: Registry) -> None:
    m = ar.mount_mcp("h", command=sys.executable, args=[UPSTREAM, "stdio"], registry=reg)
    t = reg.spawn("h.hang", {})
    time.sleep(0.3)
    m.close()
    with pytest.raises(ar.ToolError) as e:
        t.result(20)
    assert "MCP server 'h'" in str(e.value)
