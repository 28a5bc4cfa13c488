"""An upstream MCP server written with the Python SDK (`mcp` 2.x MCPServer), for the mount
tests. Run: `python mcphost_upstream.py stdio` or `python mcphost_upstream.py http PORT`."""

import asyncio
import os
import sys
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("mcphost-upstream")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    return text


@server.tool()
def pid() -> int:
    return os.getpid()


@server.tool()
async def slow(steps: int, ctx: Context) -> str:
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        await asyncio.sleep(0.05)
    return "done"


@server.tool()
def fail(message: str) -> str:
    raise ToolError(message)


@server.tool()
def crash() -> str:
    sys.stdout.flush()
    os._exit(3)


@server.tool()
async def hang(marker: str = "") -> str:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        if marker:
            Path(marker).write_text("cancelled")
        raise
    return "never"


@server.tool()
async def chatty(ctx: Context) -> str:
    await ctx.info("hello from upstream")
    return "ok"


async def _tools_changed(ctx: Context) -> None:
    # The handshake-era notification (what most servers send), plus the 2026 subscription event.
    await ctx.session.send_tool_list_changed()
    await ctx.notify_tools_changed()


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    def extra() -> str:
        return "extra " + name

    server.add_tool(extra, name=name)
    await _tools_changed(ctx)
    return "added"


@server.tool()
async def shrink(name: str, ctx: Context) -> str:
    server.remove_tool(name)
    await _tools_changed(ctx)
    return "removed"


@server.tool()
async def ask(ctx: Context) -> str:
    r = await ctx.elicit("your name?", schema=_Name)
    return f"{r.action}:{getattr(r, 'data', None) and r.data.name}"


try:
    from pydantic import BaseModel

    class _Name(BaseModel):
        name: str
except ImportError:  # pragma: no cover
    pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        asyncio.run(server.run_streamable_http_async(port=int(sys.argv[2])))
    else:
        server.run("stdio")
