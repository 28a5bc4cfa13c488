"""MCP, issue 14: rich content from Python tools (Image / Audio / EmbeddedResource), error
results every client accepts (the Python SDK client and the TypeScript SDK's Inspector CLI), and
hand-written JSON Schema 2020-12 listed as given — over stdio and streamable HTTP."""

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys

import pytest
from servers import HERE, server_env

if sys.version_info < (3, 10):
    pytest.skip("the MCP Python SDK needs Python 3.10+", allow_module_level=True)
mcp = pytest.importorskip("mcp", reason="MCP tests need the `mcp` package (pip install mcp)")

import agent_runtime
import mcpa_tools
from agent_runtime import Audio, EmbeddedResource, Image
from mcp_sdk_clients import TRANSPORTS, Serve, run, text_of

ARGS = ["--import", "mcpa_tools"]
SERVE = Serve(ARGS, ["--mcp-max-result-bytes", "4000"])
http_server = SERVE.http_server_fixture()
client_for = SERVE.client


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_rich_content_blocks(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            # Content results are not structured data: no output schema to hold them to.
            assert tools["rich.image"].output_schema is None
            assert tools["rich.mixed"].output_schema is None

            r = await c.call_tool("rich.image", {})
            assert not r.is_error and r.structured_content is None
            [img] = r.content
            assert img.type == "image" and img.mime_type == "image/png"
            assert base64.b64decode(img.data) == mcpa_tools.PNG

            r = await c.call_tool("rich.mixed", {"caption": "look"})
            assert not r.is_error and r.structured_content is None
            assert [b.type for b in r.content] == ["text", "image", "audio", "resource", "resource"]
            assert r.content[0].text == "look"
            assert (
                base64.b64decode(r.content[2].data) == mcpa_tools.WAV
                and r.content[2].mime_type == "audio/wav"
            )
            text_res, blob_res = r.content[3].resource, r.content[4].resource
            assert str(text_res.uri) == "file:///notes.txt" and text_res.text == "some notes"
            assert text_res.mime_type == "text/plain"
            assert base64.b64decode(blob_res.blob) == b"\x00\xff"

            # Look-alike data that is not exactly a content block stays structured data.
            r = await c.call_tool("rich.dict_like", {})
            assert r.structured_content["note"] == "not content" and r.content[0].type == "text"

            # Over the result cap: an error naming the cap, not a truncated image.
            r = await c.call_tool("rich.big_image", {"size": 10_000})
            assert r.is_error and "--mcp-max-result-bytes" in text_of(r)

    run(main())


def test_python_caller_gets_the_objects():
    assert agent_runtime.call("rich.image", {}) == Image(mcpa_tools.PNG, "image/png")
    out = asyncio.run(agent_runtime.call_async("rich.mixed", {"caption": "c"}))
    assert out[0] == "c" and type(out[1]) is Image and type(out[2]) is Audio
    assert isinstance(out[3], EmbeddedResource) and out[4].blob == b"\x00\xff"

    # The caller's own objects pass through a Python tool untouched (no JSON round trip).
    mine = Image(b"abc", "image/gif")

    @agent_runtime.tool(name="mcpa.identity", replace=True)
    def identity(x: object) -> object:
        return x

    assert agent_runtime.call("mcpa.identity", {"x": mine}) is mine


def test_json_callers_get_the_content_block_form():
    """The CLI (a JSON caller, like gRPC) prints the documented JSON form."""
    out = subprocess.run(
        [sys.executable, "-m", "agent_runtime", *ARGS, "call", "rich.mixed", '{"caption": "c"}'],
        check=False,
        capture_output=True,
        text=True,
        env=server_env(),
        cwd=HERE,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    value = json.loads(out.stdout)
    assert value[0] == "c"
    assert value[1] == {
        "type": "image",
        "data": base64.b64encode(mcpa_tools.PNG).decode(),
        "mimeType": "image/png",
    }
    assert value[3] == {
        "type": "resource",
        "resource": {"uri": "file:///notes.txt", "mimeType": "text/plain", "text": "some notes"},
    }
    assert value[4]["resource"]["blob"] == base64.b64encode(b"\x00\xff").decode()


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_error_results_carry_no_structured_content(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert tools["rich.fail_typed"].output_schema is not None
            r = await c.call_tool("rich.fail_typed", {"message": "boom"})
            assert r.is_error and r.structured_content is None
            assert text_of(r).startswith("RuntimeError: boom") and "Traceback" in text_of(r)
            err = r.meta["agent-runtime/error"]
            assert err["type"] == "RuntimeError" and err["message"] == "boom" and err["kind"] == "PythonError"

            r = await c.call_tool("rich.fail_typed", {"message": 3})
            assert r.is_error and r.structured_content is None
            assert r.meta["agent-runtime/error"]["path"] == "message"

    run(main())


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_schema_as_given_is_listed_verbatim(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            s = tools["schema.as_given"].input_schema
            assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            assert s["properties"]["address"] == {"$ref": "#/$defs/address"}
            assert s["$defs"]["address"]["additionalProperties"] is False
            assert s["additionalProperties"] is False
            # Derived schemas stay self-contained.
            assert "$defs" not in tools["rich.mixed"].input_schema
            r = await c.call_tool("schema.as_given", {"name": "n", "address": {"city": "Oslo"}})
            assert text_of(r) == "n @ Oslo"

    run(main())


def inspector() -> str:
    path = shutil.which("mcp-inspector")
    if path is None:
        local = os.path.join(HERE, "..", ".ci", ".node", "node_modules", ".bin", "mcp-inspector")
        if os.path.exists(local):
            path = local
    if path is None:
        pytest.fail("the MCP Inspector CLI is not installed: run `source .ci/node` (what .ci/setup does)")
    return path


def inspector_env():
    env = server_env()
    node_bin = os.path.join(HERE, "..", ".ci", ".node", "bin")
    env["PATH"] = os.pathsep.join([os.path.abspath(node_bin), env.get("PATH", "")])
    return env


@pytest.mark.parametrize("kind", ["stdio", "http"])
def test_inspector_cli_sees_a_tool_error(kind, http_server):
    """The TypeScript SDK validates structuredContent against the output schema: a failing tool
    must come out as a tool error (exit code 5), not a protocol error."""
    target = SERVE.stdio_cmd() if kind == "stdio" else [http_server.addr, "--transport", "http"]

    def call(tool, *args):
        cmd = [inspector(), "--cli", *target, "--method", "tools/call", "--tool-name", tool, *args]
        return subprocess.run(
            cmd, check=False, capture_output=True, text=True, env=inspector_env(), cwd=HERE, timeout=120
        )

    out = call("rich.fail_typed", "--tool-arg", "message=boom")
    assert out.returncode == 5, (out.returncode, out.stdout, out.stderr)
    assert "RuntimeError: boom" in out.stdout + out.stderr
    assert "data must have required property" not in out.stdout + out.stderr

    out = call("rich.image")
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    assert '"type": "image"' in out.stdout


def test_isolated_tool_result_is_the_json_form():
    import mcpa_iso_tools  # noqa: F401  (registers rich.iso_image, run in a worker process)

    out = agent_runtime.call("rich.iso_image", {})
    assert out == Image(b"\x89PNG-iso", "image/png").to_json()
