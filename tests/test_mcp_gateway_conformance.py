"""Acceptance of the gateway (issue 16): the official MCP conformance suite run *through*
`agent-runtime --mcp-server =URL serve --mcp-http` (an empty prefix: a pure proxy) in front of
`agent-runtime --path examples --import mcp_conformance serve --mcp-http` passes like it does
directly (see test_mcp_conformance.py)."""

import subprocess

from servers import ServerProcess
from test_mcp_conformance import EXAMPLES, check_results, conformance_cli, list_scenarios, node_env


def test_conformance_suite_through_the_gateway(tmp_path):
    cli = conformance_cli()
    env = node_env()
    scenarios = list_scenarios(cli, env)

    upstream = ServerProcess(["--path", EXAMPLES, "--import", "mcp_conformance", "serve", "--mcp-http", "127.0.0.1:0"])
    try:
        gateway = ServerProcess(["--mcp-server", "=" + upstream.addr, "serve", "--mcp-http", "127.0.0.1:0"])
        try:
            out = tmp_path / "results"
            r = subprocess.run(
                [cli, "server", "--url", gateway.addr, "--suite", "all", "-o", str(out)],
                check=False, capture_output=True, text=True, env=env, timeout=900,
            )
        finally:
            assert gateway.stop() == 0, "".join(gateway.lines)
    finally:
        assert upstream.stop() == 0, "".join(upstream.lines)

    check_results(out, scenarios, r, "checks through the gateway")
