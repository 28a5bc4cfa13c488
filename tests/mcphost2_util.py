"""Shared by the mount tests of rich content, live lists and call routing (test_mcp_mount_content,
test_mcp_mount_lists, test_mcp_mount_routing): the Python-SDK upstream (mcphost2_upstream.py)
over stdio or HTTP, and an agent-runtime gateway mounting it."""

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List

from servers import ServerProcess

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stdio_args() -> List[str]:
    return [UPSTREAM, "stdio"]


@contextlib.contextmanager
def http_upstream() -> Iterator[str]:
    """The upstream over streamable HTTP; yields its URL."""
    port = free_port()
    p = subprocess.Popen([sys.executable, UPSTREAM, "http", str(port)], stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert p.poll() is None, "upstream exited"
                assert time.monotonic() < end, "upstream did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        p.terminate()
        p.wait(10)


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


def stdio_command() -> str:
    return f"{sys.executable} {UPSTREAM} stdio"
