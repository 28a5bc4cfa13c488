"""Tools served over MCP in the tests; side effects visible from the test process (files)."""

import asyncio
import time
from typing import Dict, List

import agent_runtime
import rpc_tools
from agent_runtime import Context


@agent_runtime.tool(name="mcp.add")
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@agent_runtime.tool(name="mcp.shout")
async def shout(text: str, times: int = 1) -> str:
    """Upper-case `text`, repeated `times` times (async)."""
    await asyncio.sleep(0)
    return " ".join([text.upper()] * times)


@agent_runtime.tool(name="mcp.stats")
def stats(values: List[float]) -> Dict[str, float]:
    """Min, max and mean of `values`."""
    return {"min": min(values), "max": max(values), "mean": sum(values) / len(values)}


@agent_runtime.tool(name="mcp.fail")
def fail(message: str) -> None:
    """Raise ValueError(message)."""
    raise ValueError(message)


@agent_runtime.tool(name="mcp.steps")
async def steps(n: int, ctx: Context) -> int:
    """Report progress n times."""
    for i in range(1, n + 1):
        ctx.progress(i, n, f"step {i}")
        await asyncio.sleep(0.01)
    return n


# The gRPC tests' cancellable sleeper (writes started/cancelled to a marker file), under an MCP name.
agent_runtime.tool(name="mcp.slow")(rpc_tools.slow)


@agent_runtime.tool(name="mcp.block", timeout=0.3)
def block(seconds: float) -> float:
    """Sleep (blocking) for `seconds`; the tool's own timeout is 0.3 s."""
    time.sleep(seconds)
    return seconds


@agent_runtime.tool(name="mcp.big")
def big(size: int) -> str:
    """A string of `size` characters."""
    return "y" * size


@agent_runtime.tool(name="mcp.register")
def register(name: str) -> bool:
    """Register a new tool `name` at runtime (returns True)."""

    def dyn() -> str:
        return name

    agent_runtime.default_registry().register(dyn, name, description="registered at runtime", replace=True)
    return True
