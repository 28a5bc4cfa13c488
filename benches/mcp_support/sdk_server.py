"""The same echo tool served by the MCP Python SDK's own server (MCPServer, formerly FastMCP).

Usage: python sdk_server.py stdio | python sdk_server.py http PORT
"""

import sys
from typing import Any, Dict

from mcp.server.mcpserver import MCPServer

app = MCPServer("sdk-echo")


@app.tool(name="echo")
def echo(value: Dict[str, Any]) -> Dict[str, Any]:
    """Return `value` unchanged."""
    return value


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        app.run("stdio")
    else:
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
