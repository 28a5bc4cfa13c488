"""Acceptance of the gateway (issue 16): the official MCP conformance suite run *through*
`agent-runtime --mcp-server =URL serve --mcp-http` (an empty prefix: a pure proxy) in front of
`agent-runtime --path examples --import mcp_conformance serve --mcp-http` passes like it does
directly (see test_mcp_conformance.py)."""

import glob
import json
import os
import re
import subprocess

from servers import ServerProcess
from test_mcp_conformance import ALLOWED_FAILURES, EXAMPLES, conformance_cli, node_env


def test_conformance_suite_through_the_gateway(tmp_path):
    cli = conformance_cli()
    env = node_env()
    listed = subprocess.run([cli, "list", "--server"], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    scenarios = re.findall(r"^\s*- (\S+)", listed.stdout, re.MULTILINE)
    assert len(scenarios) >= 30, listed.stdout

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

    ran = set()
    failed = {}
    for path in glob.glob(str(out / "*" / "checks.json")):
        ran.add(os.path.basename(os.path.dirname(path)))
        with open(path) as f:
            for check in json.load(f):
                if check.get("status") == "FAILURE":
                    failed[check["id"]] = check.get("errorMessage", "")
    missing = [s for s in scenarios if not any(n.startswith(f"server-{s}-") for n in ran)]
    assert not missing, f"scenarios without results: {missing}\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}"
    unexpected = {k: v for k, v in failed.items() if k not in ALLOWED_FAILURES}
    assert not unexpected, "failed checks through the gateway:\n" + "\n".join(
        f"  {k}: {v}" for k, v in sorted(unexpected.items())
    )
