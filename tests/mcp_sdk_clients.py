"""The official MCP Python SDK's `Client` against `python -m agent_runtime ... serve`, for the MCP
test modules: the server a module tests (its imports and serve options), one client per transport
kind, and the small helpers every such module needs. Import it after the module's
`pytest.importorskip("mcp")`."""

import asyncio
import sys
from typing import Any, Awaitable, Iterator, List, Sequence, TypeVar

import pytest
from servers import HERE, ServerProcess, server_env

from mcp import Client, StdioServerParameters

# stdio; streamable HTTP with 2026-07-28 discovery; streamable HTTP with the initialize handshake.
TRANSPORTS = ["stdio", "http", "http-legacy"]

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    """Run a test's client session, bounded so that a stuck server fails the test."""
    return asyncio.run(asyncio.wait_for(coro, 60))


def text_of(result: Any) -> str:
    """The text blocks of a tool result, joined."""
    return "".join(getattr(c, "text", "") for c in result.content)


class Serve:
    """`python -m agent_runtime <imports> serve --mcp-stdio|--mcp-http ADDR <options>`."""

    def __init__(self, imports: Sequence[str], options: Sequence[str] = ()) -> None:
        self.imports = list(imports)
        self.options = list(options)

    def stdio_cmd(self) -> List[str]:
        return [sys.executable, "-m", "agent_runtime", *self.imports, "serve", "--mcp-stdio", *self.options]

    def stdio_params(self) -> StdioServerParameters:
        cmd = self.stdio_cmd()
        return StdioServerParameters(command=cmd[0], args=cmd[1:], env=server_env(), cwd=HERE)

    def http_server_fixture(self) -> Any:
        """A module-scoped fixture serving over streamable HTTP (a test module assigns it to
        `http_server`); the server must exit cleanly when the module is done."""

        @pytest.fixture(scope="module")
        def http_server() -> Iterator[ServerProcess]:
            s = ServerProcess([*self.imports, "serve", "--mcp-http", "127.0.0.1:0", *self.options])
            yield s
            assert s.stop() == 0, "".join(s.lines)

        return http_server

    def client(self, kind: str, http_server: ServerProcess, legacy: bool = False, **kw: Any) -> Client:
        """A client over `kind` (one of TRANSPORTS; HTTP through the module's `http_server`);
        `legacy` makes every kind use the initialize handshake."""
        mode = "legacy" if legacy or kind == "http-legacy" else "auto"
        if kind == "stdio":
            return Client(self.stdio_params(), mode=mode, **kw)
        return Client(http_server.addr, mode=mode, **kw)
