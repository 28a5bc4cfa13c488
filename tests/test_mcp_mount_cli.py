"""Mounting from the CLI (`--mcp-server`, `--mcp-config`), an npm server (server-everything),
and the gateway: `serve --mcp-http` re-serving mounted upstream tools."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("mcp.server.mcpserver")

import agent_runtime as ar
from agent_runtime import Registry
from servers import free_port, listening

HERE = Path(__file__).parent
ROOT = HERE.parent
UPSTREAM = str(HERE / "mcphost_upstream.py")
PKG_PARENT = str(Path(ar.__file__).parent.parent)
NODE_BIN = ROOT / ".ci" / ".node" / "node_modules" / ".bin"
EVERYTHING = NODE_BIN / "mcp-server-everything"
NODE = ROOT / ".ci" / ".node" / "bin" / "node"


def cli(*args: str, timeout: float = 60) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG_PARENT, str(HERE)]))
    return subprocess.run(
        [sys.executable, "-m", "agent_runtime", *args],
        capture_output=True, text=True, env=env, cwd=str(HERE), timeout=timeout, check=False,
    )


def upstream_spec(prefix: str) -> str:
    return f"{prefix}={sys.executable} {UPSTREAM} stdio"


def test_cli_list_and_call_with_mcp_server() -> None:
    p = cli("--mcp-server", upstream_spec("py"), "list")
    assert p.returncode == 0, p.stderr
    assert "py.add" in p.stdout and "Add two integers." in p.stdout
    p = cli("--mcp-server", upstream_spec("py"), "call", "py.add", '{"a": 1, "b": 41}')
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"result": 42}
    p = cli("--mcp-server", upstream_spec("py"), "call", "py.fail", '{"message": "nope"}')
    assert p.returncode != 0 and "nope" in p.stderr


def test_cli_mcp_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "servers.json"
    cfg.write_text(json.dumps({"mcpServers": {
        "one": {"command": sys.executable, "args": [UPSTREAM, "stdio"]},
        "two": {"command": sys.executable, "args": [UPSTREAM, "stdio"], "prefix": "deux", "env": {"X": "1"}},
    }}))
    p = cli("--mcp-config", str(cfg), "list", "--json")
    assert p.returncode == 0, p.stderr
    names = {s["name"] for s in json.loads(p.stdout)}
    assert {"one.add", "deux.add"} <= names
    bad = tmp_path / "bad.json"
    bad.write_text('{"mcpServers": {"x": {"url": "http://h", "command": "y"}}}')
    p = cli("--mcp-config", str(bad), "list")
    assert p.returncode != 0 and "mcpServers.x" in p.stderr
    p = cli("--mcp-server", "noequals", "list")
    assert p.returncode != 0 and "PREFIX=" in p.stderr
    # Two mounts with one prefix collide: refused, naming both.
    p = cli("--mcp-server", upstream_spec("py"), "--mcp-server", upstream_spec("py"), "list")
    assert p.returncode != 0 and "collide" in p.stderr and "'py'" in p.stderr


needs_node = pytest.mark.skipif(
    not (EVERYTHING.exists() and NODE.exists()), reason="run `source .ci/node` (installs server-everything)"
)


@needs_node
def test_npm_server_everything() -> None:
    reg = Registry()
    env = {"PATH": f"{NODE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with ar.mount_mcp("ev", command=str(EVERYTHING), args=["stdio"], env=env, registry=reg) as m:
        assert {"ev.echo", "ev.get-sum", "ev.get-tiny-image"} <= set(m.tools())
        assert "hi" in json.dumps(reg.call("ev.echo", {"message": "hi"}))
        assert "5" in json.dumps(reg.call("ev.get-sum", {"a": 2, "b": 3}))
        out = reg.call("ev.get-tiny-image")
        assert any(isinstance(b, ar.Image) and b.mime_type == "image/png" for b in out)
        seen = []
        reg.call("ev.trigger-long-running-operation", {"duration": 1, "steps": 3},
                 on_progress=lambda *a: seen.append(a))
        assert len(seen) == 3
        with pytest.raises(ar.InvalidArguments):
            reg.call("ev.get-sum", {"a": "x", "b": 1})


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    cfg = tmp_path / "servers.json"
    cfg.write_text(json.dumps({"mcpServers": {"py": {"command": sys.executable, "args": [UPSTREAM, "stdio"]}}}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG_PARENT, str(HERE)]))
    cmd = [sys.executable, "-m", "agent_runtime", "--mcp-config", str(cfg), "--import", "sample_tools",
           "serve", "--mcp-http", f"127.0.0.1:{port}"]  # fmt: skip
    with listening(cmd, port, "gateway", env=env, cwd=str(HERE)):
        yield f"http://127.0.0.1:{port}/mcp"


def test_gateway_reserves_upstream_and_own_tools(gateway: str) -> None:
    reg = Registry()
    with ar.mount_mcp("gw", url=gateway, registry=reg) as m:
        assert {"gw.py.add", "gw.add"} <= set(m.tools())
        assert reg.call("gw.py.add", {"a": 1, "b": 2}) == {"result": 3}
        seen = []
        assert reg.call("gw.py.slow", {"steps": 2}, on_progress=lambda *a: seen.append(a)) == {"result": "done"}
        assert [s[0] for s in seen] == [1, 2]
        with pytest.raises(ar.ToolError) as e:
            reg.call("gw.py.fail", {"message": "deep"})
        assert "deep" in str(e.value)
        # A tool added upstream shows up two hops away.
        reg.call("gw.py.grow", {"name": "late"})
        end = time.monotonic() + 20
        while "gw.py.late" not in reg:
            assert time.monotonic() < end
            time.sleep(0.05)
        assert reg.call("gw.py.late") == {"result": "extra late"}


def test_python_sdk_client_through_the_gateway(gateway: str) -> None:
    import anyio
    from mcp.client.streamable_http import streamable_http_client

    from mcp import Client

    async def go() -> Any:
        async with Client(streamable_http_client(gateway)) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            res = await c.call_tool("py.add", {"a": 5, "b": 6})
            return names, res

    names, res = anyio.run(go)
    assert "py.add" in names
    assert not res.is_error
    assert res.structured_content == {"result": 11}


def test_command_is_resolved_on_path() -> None:
    # Like a shell: a bare command name is looked up on PATH.
    reg = Registry()
    python = shutil.which("python3") or sys.executable
    with ar.mount_mcp("p", command=os.path.basename(python), args=[UPSTREAM, "stdio"], registry=reg):
        assert reg.call("p.add", {"a": 1, "b": 1}) == {"result": 2}


def test_gateway_forwards_elicitation_and_logs_to_its_client(gateway: str) -> None:
    import anyio

    from mcp import Client, types

    logs = []

    async def on_elicit(context: Any, params: Any) -> Any:
        assert params.message == "your name?"
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def on_log(params: Any) -> None:
        logs.append(params.data)

    async def go() -> Any:
        async with Client(gateway, mode="legacy", elicitation_callback=on_elicit, logging_callback=on_log) as c:
            asked = await c.call_tool("py.ask", {})
            chatty = await c.call_tool("py.chatty", {})
            with anyio.fail_after(10):
                while "hello from upstream" not in logs:
                    await anyio.sleep(0.05)
            return asked, chatty

    asked, chatty = anyio.run(go)
    assert not asked.is_error and asked.structured_content == {"result": "accept:Ada"}
    assert chatty.structured_content == {"result": "ok"}


def test_upstream_requests_fail_when_the_caller_cannot_answer() -> None:
    reg = Registry()
    with ar.mount_mcp("py", command=sys.executable, args=[UPSTREAM, "stdio"], registry=reg):
        with pytest.raises(ar.ToolError) as e:
            reg.call("py.ask")
        assert "elicitation/create" in str(e.value) or "not supported" in str(e.value).lower()
