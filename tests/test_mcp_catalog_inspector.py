"""Resources and prompts through a TypeScript-SDK client: the MCP Inspector CLI (installed by
`.ci/node`, like most desktop and IDE hosts it is built on the TypeScript SDK) reads a template
resource and gets a prompt, and sees the server's clear error for bad input."""

import json
import os
import shutil
import subprocess

import pytest
from servers import ServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def inspector() -> str:
    local = os.path.join(ROOT, ".ci", ".node", "node_modules", ".bin", "mcp-inspector")
    found = local if os.path.exists(local) else shutil.which("mcp-inspector")
    if not found:
        pytest.fail("the MCP Inspector CLI is not installed: run `source .ci/node` (what .ci/setup does)")
    return found


@pytest.fixture(scope="module")
def server():
    s = ServerProcess(["--import", "mcpb_catalog", "serve", "--mcp-http", "127.0.0.1:0"])
    yield s
    assert s.stop() == 0, "".join(s.lines)


def cli(server, tmp_path, *args: str) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, MCP_CATALOG_PATH=str(tmp_path / "catalog.json"))
    node_bin = os.path.join(ROOT, ".ci", ".node", "bin")
    env["PATH"] = node_bin + os.pathsep + env.get("PATH", "")
    return subprocess.run(
        [inspector(), "--cli", server.addr, *args], check=False, capture_output=True, text=True, env=env, timeout=120
    )


def test_template_read_and_prompt(server, tmp_path):
    r = cli(server, tmp_path, "--method", "resources/read", "--uri", "cat://items/2/of/bo")
    assert r.returncode == 0, r.stdout + r.stderr
    (c,) = json.loads(r.stdout)["contents"]
    assert c == {"uri": "cat://items/2/of/bo", "mimeType": "text/plain", "text": "item 3 of bo (read by 'resource cat_item')"}
    r = cli(server, tmp_path, "--method", "prompts/get", "--prompt-name", "greet", "--prompt-args", "name=Ada")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["messages"] == [{"role": "user", "content": {"type": "text", "text": "Hello, Ada."}}]
    r = cli(server, tmp_path, "--method", "resources/templates/list")
    assert r.returncode == 0, r.stdout + r.stderr
    assert {t["uriTemplate"] for t in json.loads(r.stdout)["resourceTemplates"]} == {
        "cat://async/{key}",
        "cat://items/{n}/of/{owner}",
        "cat://slow/{marker}",
    }


def test_bad_input_reaches_the_client_as_the_servers_message(server, tmp_path):
    r = cli(server, tmp_path, "--method", "resources/read", "--uri", "cat://nothing")
    assert r.returncode != 0 and "Resource not found: cat://nothing" in r.stdout + r.stderr
    r = cli(server, tmp_path, "--method", "prompts/get", "--prompt-name", "greet")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "prompt 'greet': missing required argument 'name'" in out
    assert out.count("prompt 'greet'") == 1, out
    r = cli(server, tmp_path, "--method", "prompts/get", "--prompt-name", "explode", "--prompt-args", "reason=x")
    assert r.returncode != 0 and "RuntimeError: prompt failed: x" in r.stdout + r.stderr
