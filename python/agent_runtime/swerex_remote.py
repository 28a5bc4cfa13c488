"""``agent-runtime-swerex-remote``: a drop-in for SWE-ReX's ``swerex-remote`` server.

Accepts ``swerex-remote``'s flags (``--host``, ``--port``, ``--auth-token``, ``--version``) and
serves the same HTTP protocol from Rust (``agent-runtime serve --swerex``), on agent-runtime's
shell sessions. SWE-ReX's ``DockerDeployment`` and ``ModalDeployment`` start the command
``swerex-remote`` inside the sandbox: link this script under that name in the image (see the
README's SWE-ReX section); the wheel itself does not take over the name.

Like ``swerex-remote`` it listens on ``0.0.0.0:8000`` by default — the server is reached from
outside its container — which agent-runtime allows only with a token (``--auth-token`` or
``AGENT_RUNTIME_TOKEN``); clients send it as ``X-API-Key``.
"""

import argparse
import ipaddress
import os
import sys
from typing import List, Optional

__all__ = ["main"]


def _address(host: str, port: int) -> str:
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def build_argv(args: argparse.Namespace) -> List[str]:
    """The ``agent-runtime`` command line equivalent to ``swerex-remote``'s ``args``."""
    host = "127.0.0.1" if args.host == "localhost" else args.host
    argv = ["agent-runtime", "serve", "--swerex", _address(host, args.port)]
    if not _is_loopback(host):
        # The operator named the interface (or kept swerex-remote's 0.0.0.0 default): the
        # sandbox's server is meant to be reached from outside; the token stays mandatory.
        argv.append("--allow-remote")
    if args.auth_token:
        argv += ["--token", args.auth_token]
    return argv


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agent-runtime-swerex-remote",
        description="Serve SWE-ReX's remote API from agent-runtime (a drop-in for swerex-remote)",
    )
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    p.add_argument("--host", default="0.0.0.0", help="host to bind the server to")
    p.add_argument("--port", type=int, default=8000, help="port to run the server on")
    p.add_argument(
        "--auth-token",
        default=os.environ.get("AGENT_RUNTIME_TOKEN", ""),
        help="token clients must send as X-API-Key (default: $AGENT_RUNTIME_TOKEN)",
    )
    return p


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``agent-runtime-swerex-remote``."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(version("agent-runtime"))
        except PackageNotFoundError:
            print("unknown")
        return
    if not 0 <= args.port <= 65535:
        sys.stderr.write(f"error: --port {args.port} is not a TCP port (0-65535)\n")
        raise SystemExit(2)
    from . import __main__ as cli

    sys.argv = build_argv(args)
    cli.main()


if __name__ == "__main__":
    main()
