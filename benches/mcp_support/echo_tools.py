"""The echo tool both MCP servers in the benchmark serve (agent-runtime imports this module)."""

from typing import Any, Dict

import agent_runtime


@agent_runtime.tool(name="echo")
def echo(value: Dict[str, Any]) -> Dict[str, Any]:
    """Return `value` unchanged."""
    return value
