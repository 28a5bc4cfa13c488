"""Helpers for the scale-out tests and benchmark: replicas of ``agent-runtime serve`` and an
nginx (Debian's package) in front of them, run as a foreground process with a generated config.
"""

import os
import shutil
import socket
import subprocess
import time
from typing import List, Optional, Sequence

from servers import ServerProcess, free_port

# A call that reached a replica which then died may have run: nginx's bare 502 would read as
# UNAVAILABLE (retryable) to gRPC clients, so it answers INTERNAL instead, as `WorkerCrashed` does.
LOST_MESSAGE = "upstream replica lost mid-call: the call may have run"

_CONF = """\
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream grpc_replicas {{
{grpc_servers}
    }}
    upstream mcp_replicas {{
{mcp_servers}
    }}
    server {{
        listen 127.0.0.1:{grpc_port} http2;
        location / {{
            grpc_pass grpc://grpc_replicas;
            # Only failures before the call reached a replica go to the next one (nginx never
            # re-sends a POST that was sent).
            grpc_next_upstream error timeout;
            error_page 502 504 = @lost;
        }}
        location @lost {{
            default_type application/grpc;
            add_header grpc-status 13 always;
            add_header grpc-message "{lost}" always;
            return 204;
        }}
    }}
    server {{
        listen 127.0.0.1:{mcp_port};
        location / {{
            proxy_pass http://mcp_replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


def nginx_binary() -> Optional[str]:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Nginx:
    """nginx in the foreground: gRPC (h2c, `grpc_pass`) and MCP HTTP (`proxy_pass`) round robin."""

    def __init__(self, tmp: str, grpc_upstreams: Sequence[str], mcp_upstreams: Sequence[str]) -> None:
        binary = nginx_binary()
        assert binary, "nginx is not installed"
        self.grpc_port, self.mcp_port = free_port(), free_port()

        def servers(addrs: Sequence[str]) -> str:
            # max_fails/fail_timeout: a replica that refused a connection is skipped for a while.
            return "\n".join(f"        server {a} max_fails=1 fail_timeout=5s;" for a in addrs)

        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                _CONF.format(
                    tmp=tmp,
                    grpc_servers=servers(grpc_upstreams),
                    mcp_servers=servers(mcp_upstreams),
                    grpc_port=self.grpc_port,
                    mcp_port=self.mcp_port,
                    lost=LOST_MESSAGE,
                )
            )
        self.error_log = os.path.join(tmp, "error.log")
        self.proc = subprocess.Popen(
            [binary, "-p", tmp, "-c", conf, "-e", self.error_log], stderr=subprocess.PIPE
        )
        try:
            wait_port(self.grpc_port)
            wait_port(self.mcp_port)
        except OSError:
            self.stop()
            raise AssertionError("nginx did not start: " + self.errors())

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.mcp_port}/mcp"

    def errors(self) -> str:
        try:
            with open(self.error_log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Replica:
    """One `agent-runtime serve --grpc --mcp-http --mcp-stateless` with the scale tool."""

    def __init__(self, index: int, log: str, extra: Sequence[str] = ()) -> None:
        self.index = index
        self.log = log
        args = [
            "--import",
            "scale_tools",
            "serve",
            "--grpc",
            "127.0.0.1:0",
            "--mcp-http",
            "127.0.0.1:0",
            "--mcp-stateless",
            *extra,
        ]
        env = {"SCALE_REPLICA": str(index)}
        if log:  # "" (the benchmark): no execution log
            env["SCALE_LOG"] = log
        self.server = ServerProcess(args, env=env)
        self.grpc_addr = self._addr("gRPC")
        self.mcp_url = self._addr("MCP")

    def _addr(self, kind: str) -> str:
        for line in self.server.lines:
            if kind in line and "listening on" in line:
                return line.split("listening on", 1)[1].split()[0]
        raise AssertionError(f"no {kind} address in: " + "".join(self.server.lines))

    @property
    def mcp_hostport(self) -> str:
        return self.mcp_url.split("://", 1)[1].split("/", 1)[0]

    def executions(self) -> List[str]:
        if not self.log:
            return []
        try:
            with open(self.log) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def kill(self) -> None:
        self.server.proc.kill()
        self.server.proc.wait(10)

    def stop(self) -> int:
        return self.server.stop()
