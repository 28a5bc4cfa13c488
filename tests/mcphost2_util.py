"""Shared by the mount tests of rich content, live lists and call routing (test_mcp_mount_content,
test_mcp_mount_lists, test_mcp_mount_routing): the Python-SDK upstream (mcphost2_upstream.py)
over stdio or HTTP, and an agent-runtime gateway mounting it."""

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List

import agent_runtime as ar
from servers import ServerProcess, free_port, listening

HERE = Path(__file__).parent
UPSTREAM = str(HERE / "mcphost2_upstream.py")


def wait_until(pred: Callable[[], Any], timeout: float = 20.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def stdio_args() -> List[str]:
    return [UPSTREAM, "stdio"]


@contextlib.contextmanager
def http_upstream() -> Iterator[str]:
    """The upstream over streamable HTTP; yields its URL."""
    port = free_port()
    with listening([sys.executable, UPSTREAM, "http", str(port)], port, "upstream"):
        yield f"http://127.0.0.1:{port}/mcp"


@contextlib.contextmanager
def gateway(upstream: str) -> Iterator[str]:
    """`agent-runtime --mcp-server up=UPSTREAM serve --mcp-http`; yields its URL. `upstream` is
    a URL or a command line."""
    g = ServerProcess(["--mcp-server", f"up={upstream}", "serve", "--mcp-http", "127.0.0.1:0"])
    try:
        assert g.addr is not None
        yield g.addr
    finally:
        assert g.stop() == 0, "".join(g.lines)


@contextlib.contextmanager
def mounted_upstream(kind: str, registry: Any) -> Iterator[Any]:
    """The upstream mounted as `up` into `registry` over `kind` ("stdio" or "http"); yields the
    mount, closed afterwards."""
    with contextlib.ExitStack() as stack:
        if kind == "stdio":
            m = ar.mount_mcp("up", command=sys.executable, args=stdio_args(), registry=registry)
        else:
            m = ar.mount_mcp("up", url=stack.enter_context(http_upstream()), registry=registry)
        stack.callback(m.close)
        yield m


def stdio_command() -> str:
    return f"{sys.executable} {UPSTREAM} stdio"
