"""MCP: `agent-runtime serve --mcp-stdio / --mcp-http` driven by the official Python MCP SDK
client, over both transports and both lifecycles (2026-07-28 discovery and the legacy
initialize handshake)."""

import asyncio
import json
import sys
import urllib.error
import urllib.request

import pytest
from servers import ServerProcess, server_env, wait_for_file

if sys.version_info < (3, 10):
    pytest.skip("the MCP Python SDK needs Python 3.10+", allow_module_level=True)
mcp = pytest.importorskip("mcp", reason="MCP tests need the `mcp` package (pip install mcp)")

from mcp_sdk_clients import TRANSPORTS, Serve, run, text_of

from mcp import Client

TOOL_ARGS = ["--import", "mcp_tools", "--import", "sample_tools"]
SERVE = Serve(TOOL_ARGS)
# The stdio server of client_for() keeps the default result cap.
http_server = Serve(TOOL_ARGS, ["--mcp-max-result-bytes", "5000"]).http_server_fixture()
client_for = SERVE.client


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_list_and_call(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            assert c.server_info is not None and c.server_info.name == "agent-runtime"
            tools = {t.name: t for t in (await c.list_tools()).tools}
            add = tools["mcp.add"]
            assert add.description == "Add two integers."
            assert add.input_schema["properties"]["a"]["type"] == "integer"
            assert sorted(add.input_schema["required"]) == ["a", "b"]
            assert add.output_schema["properties"]["result"]["type"] == "integer"
            for schema in (t.input_schema for t in tools.values()):
                assert "$ref" not in json.dumps(schema) and "$defs" not in schema

            r = await c.call_tool("mcp.add", {"a": 2, "b": 40})  # sync Python tool
            assert not r.is_error
            assert r.structured_content == {"result": 42}
            assert text_of(r) == "42"

            r = await c.call_tool("mcp.shout", {"text": "hi", "times": 2})  # async Python tool
            assert r.structured_content == {"result": "HI HI"} and text_of(r) == "HI HI"

            r = await c.call_tool("mcp.stats", {"values": [1, 2, 3]})  # object result: not wrapped
            assert r.structured_content == {"min": 1, "max": 3, "mean": 2}
            assert json.loads(text_of(r)) == {"min": 1, "max": 3, "mean": 2}

            r = await c.call_tool("diag.add", {"a": 1, "b": 2})  # Rust tool
            assert r.structured_content == {"result": 3}

    run(main())


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_errors(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            r = await c.call_tool("mcp.fail", {"message": "bad thing"})
            # No structuredContent on errors (a client holds it to the output schema); the
            # detail is in the text and in _meta.
            assert r.is_error and r.structured_content is None
            err = r.meta["agent-runtime/error"]
            assert err["type"] == "ValueError" and err["message"] == "bad thing"
            assert "Traceback" in err["traceback"] and "raise ValueError(message)" in err["traceback"]
            assert text_of(r).startswith("ValueError: bad thing")

            r = await c.call_tool("mcp.add", {"a": "two", "b": 1})
            assert r.is_error
            err = r.meta["agent-runtime/error"]
            assert err["type"] == "InvalidArguments" and err["path"] == "a"
            assert '"two" is not of type "integer"' in err["message"]

            r = await c.call_tool("mcp.add", {"a": 1})
            assert r.is_error and "b" in r.meta["agent-runtime/error"]["message"]

            r = await c.call_tool("mcp.block", {"seconds": 5})  # the tool's own 0.3 s timeout
            assert r.is_error and r.meta["agent-runtime/error"]["type"] == "ToolTimeout"

            with pytest.raises(mcp.MCPError) as ei:
                await c.call_tool("mcp.ad", {})
            assert "mcp.ad" in str(ei.value) and "mcp.add" in str(ei.value)

            # Still serving after all of that.
            assert (await c.call_tool("mcp.add", {"a": 1, "b": 1})).structured_content == {"result": 2}

    run(main())


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_progress(kind, http_server):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async def main():
        async with client_for(kind, http_server) as c:
            r = await c.call_tool("mcp.steps", {"n": 4}, progress_callback=on_progress)
            assert r.structured_content == {"result": 4}

    run(main())
    assert seen == [(float(i), 4.0, f"step {i}") for i in range(1, 5)]


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_cancellation_stops_the_tool(kind, http_server, tmp_path):
    marker = str(tmp_path / "slow.txt")

    async def main():
        async with client_for(kind, http_server) as c:
            task = asyncio.ensure_future(c.call_tool("mcp.slow", {"marker": marker, "seconds": 60}))
            assert await asyncio.get_running_loop().run_in_executor(None, wait_for_file, marker, "started")
            task.cancel()  # the SDK sends notifications/cancelled
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.get_running_loop().run_in_executor(None, wait_for_file, marker, "cancelled")
            # The session is still usable.
            assert (await c.call_tool("mcp.add", {"a": 1, "b": 1})).structured_content == {"result": 2}

    run(main())
    with open(marker) as f:
        assert f.read().split() == ["started", "cancelled"]


@pytest.mark.parametrize("kind", ["stdio", "http"])
def test_fifty_concurrent_calls(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            rs = await asyncio.gather(
                *[c.call_tool("mcp.add" if i % 2 else "mcp.shout", {"a": i, "b": i} if i % 2 else {"text": f"t{i}"}) for i in range(50)]
            )
            for i, r in enumerate(rs):
                assert not r.is_error
                assert r.structured_content == {"result": 2 * i if i % 2 else f"T{i}"}

    run(main())


def test_large_results_are_truncated(http_server):
    async def main():
        async with client_for("http", http_server) as c:
            r = await c.call_tool("mcp.big", {"size": 100})
            assert r.structured_content == {"result": "y" * 100}
            # mcp.big declares an output schema, so a cut result is an error result with the marker.
            r = await c.call_tool("mcp.big", {"size": 20000})
            assert r.is_error
            t = text_of(r)
            assert t.startswith("y" * 100)
            assert "[truncated: result of tool 'mcp.big' is 20000 bytes; the server's cap is 5000 bytes" in t
            # Without an output schema: a successful result with the marker.
            r = await c.call_tool("diag.echo", {"s": "z" * 20000})
            assert not r.is_error and "[truncated: result of tool 'diag.echo'" in text_of(r)

    run(main())


def test_tools_list_changed_legacy_session(http_server):
    got = asyncio.Event

    async def main():
        changed = got()

        async def handler(message):
            root = getattr(message, "root", message)
            if getattr(root, "method", None) == "notifications/tools/list_changed":
                changed.set()

        async with Client(http_server.addr, mode="legacy", message_handler=handler) as c:
            assert "dyn.legacy" not in {t.name for t in (await c.list_tools()).tools}
            assert (await c.call_tool("mcp.register", {"name": "dyn.legacy"})).structured_content == {"result": True}
            await asyncio.wait_for(changed.wait(), 10)
            tools = {t.name for t in (await c.list_tools()).tools}
            assert "dyn.legacy" in tools
            assert (await c.call_tool("dyn.legacy", {})).structured_content == {"result": "dyn.legacy"}

    run(main())


def test_tools_list_changed_subscription(http_server):
    async def main():
        async with Client(http_server.addr) as c, c.listen(tools_list_changed=True) as sub:
            assert (await c.call_tool("mcp.register", {"name": "dyn.modern"})).structured_content == {"result": True}
            event = await asyncio.wait_for(sub.__anext__(), 10)
            assert "tools" in type(event).__name__.lower() or "tools" in str(event).lower()
            assert "dyn.modern" in {t.name for t in (await c.list_tools()).tools}

    run(main())


def test_stdio_keeps_stdout_clean(tmp_path):
    """A tool printing to stdout must not corrupt the protocol stream."""
    mod = tmp_path / "noisy_tools.py"
    mod.write_text(
        "import agent_runtime, os\n"
        "@agent_runtime.tool(name='noisy')\n"
        "def noisy() -> str:\n"
        "    print('to stdout', flush=True)\n"
        "    os.write(1, b'raw fd 1\\n')\n"
        "    return 'quiet'\n"
    )

    async def main():
        params = Serve(["--path", str(tmp_path), "--import", "noisy_tools"]).stdio_params()
        async with Client(params) as c:
            for _ in range(3):
                r = await c.call_tool("noisy", {})
                assert r.structured_content == {"result": "quiet"}

    run(main())


def _post(url, body, headers):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
HDRS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def test_http_rejects_foreign_host_header(http_server):
    status, _ = _post(http_server.addr, INIT, {**HDRS, "Host": "evil.example.com"})
    assert status == 403
    status, _ = _post(http_server.addr, INIT, HDRS)
    assert status == 200


def test_http_bearer_token():
    s = ServerProcess([*TOOL_ARGS, "serve", "--mcp-http", "127.0.0.1:0", "--token", "s3cret"])
    try:
        status, body = _post(s.addr, INIT, HDRS)
        assert status == 401 and "missing bearer token" in body
        status, body = _post(s.addr, INIT, {**HDRS, "authorization": "Bearer nope"})
        assert status == 401 and "invalid bearer token" in body
        status, _ = _post(s.addr, INIT, {**HDRS, "authorization": "Bearer s3cret"})
        assert status == 200

        async def main():
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            async with httpx2.AsyncClient(headers={"authorization": "Bearer s3cret"}) as h, Client(
                streamable_http_client(s.addr, http_client=h)
            ) as c:
                assert (await c.call_tool("mcp.add", {"a": 1, "b": 2})).structured_content == {"result": 3}

        run(main())
    finally:
        assert s.stop() == 0, "".join(s.lines)


def test_non_loopback_needs_flag_and_token():
    import subprocess

    base = [sys.executable, "-m", "agent_runtime", "serve", "--mcp-http", "0.0.0.0:0"]
    p = subprocess.run(base, check=False, capture_output=True, text=True, env=server_env(), timeout=60)
    assert p.returncode == 4 and "--allow-remote" in p.stderr
    p = subprocess.run([*base, "--allow-remote"], check=False, capture_output=True, text=True, env=server_env(), timeout=60)
    assert p.returncode == 4 and "bearer token" in p.stderr


def test_grpc_and_mcp_http_in_one_process(tmp_path):
    s = ServerProcess([*TOOL_ARGS, "serve", "--grpc", "127.0.0.1:0", "--mcp-http", "127.0.0.1:0"])
    try:
        grpc_addr = next(a for a in s.addrs if not a.startswith("http"))
        mcp_addr = next(a for a in s.addrs if a.startswith("http"))
        from agent_runtime.grpc import Client as GrpcClient

        with GrpcClient(grpc_addr) as g:
            assert g.run_tool("mcp.add", {"a": 5, "b": 6}) == 11

        async def main():
            async with Client(mcp_addr) as c:
                assert (await c.call_tool("mcp.add", {"a": 5, "b": 6})).structured_content == {"result": 11}

        run(main())
    finally:
        assert s.stop() == 0, "".join(s.lines)


def test_isolated_tools_over_mcp(tmp_path):
    """Tools isolated in worker processes keep their semantics over MCP: results, the remote
    exception's type and message, a crash as an error result, progress and cancellation."""
    marker = str(tmp_path / "iso.txt")
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async def main():
        async with Client(Serve(["--import", "iso_tools"]).stdio_params()) as c:
            r = await c.call_tool("iso_echo", {"value": {"a": [1, 2]}})
            assert not r.is_error and r.structured_content == {"result": {"a": [1, 2]}}

            r = await c.call_tool("iso_raise", {"kind": "value", "message": "remote boom"})
            assert r.is_error
            err = r.meta["agent-runtime/error"]
            assert err["type"] == "ValueError" and err["message"] == "remote boom"

            r = await c.call_tool("iso_segfault", {})
            assert r.is_error and r.meta["agent-runtime/error"]["type"] == "WorkerCrashed"
            assert "SIGSEGV" in r.meta["agent-runtime/error"]["message"] or "signal 11" in text_of(r)

            r = await c.call_tool("iso_progress", {"steps": 3}, progress_callback=on_progress)
            assert r.structured_content == {"result": "done"}

            task = asyncio.ensure_future(c.call_tool("iso_async_sleep", {"seconds": 60, "marker": marker}))
            assert await asyncio.get_running_loop().run_in_executor(None, wait_for_file, marker, "started")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.get_running_loop().run_in_executor(None, wait_for_file, marker, "cancelled")

            # The server (and the pool) still serve.
            r = await c.call_tool("iso_echo", {"value": 7})
            assert r.structured_content == {"result": 7}

    run(main())
    assert seen == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]
