"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, installed by
`.ci/node`) against `agent-runtime --path examples --import mcp_conformance serve --mcp-http`:
every scenario of `--suite all` (active and pending) must pass, except the allow-list below."""

import glob
import json
import os
import re
import shutil
import subprocess

import pytest
from servers import ServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")

# Checks allowed to fail, by check id, each with the reason. Keep this minimal: an entry is a
# known gap, not a place to park regressions. (Empty: every check passes.)
ALLOWED_FAILURES = {}


def conformance_cli() -> str:
    local = os.path.join(ROOT, ".ci", ".node", "node_modules", ".bin", "conformance")
    found = local if os.path.exists(local) else shutil.which("conformance")
    if not found:
        pytest.fail("the MCP conformance suite is not installed: run `source .ci/node` (what .ci/setup does)")
    return found


def node_env() -> dict:
    env = dict(os.environ)
    node_bin = os.path.join(ROOT, ".ci", ".node", "bin")
    if os.path.isdir(node_bin):
        env["PATH"] = node_bin + os.pathsep + env.get("PATH", "")
    return env


def list_scenarios(cli: str, env: dict) -> list:
    """The suite's server scenarios (at least 30: the whole suite is listed)."""
    listed = subprocess.run([cli, "list", "--server"], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    scenarios = re.findall(r"^\s*- (\S+)", listed.stdout, re.MULTILINE)
    assert len(scenarios) >= 30, listed.stdout
    return scenarios


def check_results(out, scenarios: list, run: "subprocess.CompletedProcess[str]", what: str) -> None:
    """Every listed scenario ran (a results directory is named server-<scenario>-<timestamp>) and
    no check outside ALLOWED_FAILURES failed."""
    ran = set()
    failed = {}
    for path in glob.glob(str(out / "*" / "checks.json")):
        ran.add(os.path.basename(os.path.dirname(path)))
        with open(path) as f:
            for check in json.load(f):
                if check.get("status") == "FAILURE":
                    failed[check["id"]] = check.get("errorMessage", "")
    missing = [s for s in scenarios if not any(n.startswith(f"server-{s}-") for n in ran)]
    assert not missing, f"scenarios without results: {missing}\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    unexpected = {k: v for k, v in failed.items() if k not in ALLOWED_FAILURES}
    assert not unexpected, f"failed {what}:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(unexpected.items()))


def test_conformance_suite_all(tmp_path):
    cli = conformance_cli()
    env = node_env()
    scenarios = list_scenarios(cli, env)

    server = ServerProcess(["--path", EXAMPLES, "--import", "mcp_conformance", "serve", "--mcp-http", "127.0.0.1:0"])
    try:
        out = tmp_path / "results"
        r = subprocess.run(
            [cli, "server", "--url", server.addr, "--suite", "all", "-o", str(out)],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
    finally:
        assert server.stop() == 0, "".join(server.lines)

    check_results(out, scenarios, r, "conformance checks")
