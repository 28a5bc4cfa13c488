"""Tools for ``agent-runtime serve --grpc`` in the grpc benchmark area.

``bench.echo`` is a Python tool with the same semantics as the design note's server's echo
(``echo(value) -> value``); ``register_diagnostic_tools()`` adds the Rust ``diag.*`` tools,
among them ``diag.echo`` (returns its whole arguments object).
"""

from typing import Any

import agent_runtime

agent_runtime.register_diagnostic_tools()


@agent_runtime.tool(name="bench.echo")
def echo(value: Any) -> Any:
    """Return ``value`` unchanged."""
    return value
