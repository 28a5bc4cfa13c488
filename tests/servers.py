"""A server subprocess (`python -m agent_runtime ... serve ...`) for transport tests: started
with the test tool modules importable, its bound address read from stderr."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, Iterator, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))


def server_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for a server subprocess: the package under test and tests/ importable."""
    import agent_runtime

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(agent_runtime.__file__)))
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([pkg_parent, HERE])
    e.pop("AGENT_RUNTIME_TOKEN", None)
    e.update(extra or {})
    return e


class ServerProcess:
    """`python -m agent_runtime <args>`; waits for `listening on ADDR` on stderr."""

    def __init__(self, args: Sequence[str], env: Optional[Dict[str, str]] = None, timeout: float = 30.0):
        cmd = [sys.executable, "-m", "agent_runtime", *args]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=server_env(env), cwd=HERE)
        self.lines: List[str] = []
        self.addrs: List[str] = []
        self.addr: Optional[str] = None
        wanted = sum(1 for a in args if a in ("--grpc", "--mcp-http"))
        deadline = time.monotonic() + timeout
        assert self.proc.stderr is not None
        while time.monotonic() < deadline and len(self.addrs) < max(wanted, 1):
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"listening on (\S+)", line)
            if m:
                self.addrs.append(m.group(1))
        assert self.addrs, "server did not start: " + "".join(self.lines)
        self.addr = self.addrs[0]
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def wait_for_file(path: "os.PathLike[str] | str", text: str, timeout: float = 10.0) -> bool:
    """Poll until the file at `path` contains `text` (a side effect of another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                if text in f.read():
                    return True
        time.sleep(0.02)
    return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server started next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def listening(
    cmd: Sequence[str], port: int, what: str, timeout: float = 30.0, **popen: object
) -> Iterator["subprocess.Popen[bytes]"]:
    """Run `cmd` (a server that binds 127.0.0.1:`port`) until the block ends; the block starts
    once the port accepts connections. Fails naming `what` if it exits or never listens."""
    p = subprocess.Popen(list(cmd), stderr=subprocess.DEVNULL, **popen)  # type: ignore[call-overload]
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert p.poll() is None, f"{what} exited"
                assert time.monotonic() < end, f"{what} did not start"
                time.sleep(0.05)
        yield p
    finally:
        p.terminate()
        p.wait(15)
