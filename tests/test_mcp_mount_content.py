"""Rich content of a mounted MCP server (issue 16): a Python-SDK upstream's image, audio and
resource blocks reach Python callers (`call`, `call_async`, `spawn`, a Python tool calling on) as
`agent_runtime.Image` / `Audio` / `EmbeddedResource`, while JSON callers (the CLI) see the same
JSON as before and the gateway re-serves the blocks as they came."""

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("mcp.server.mcpserver")

import agent_runtime as ar
from agent_runtime import Audio, EmbeddedResource, Image, Registry
from mcphost2_upstream import PNG, WAV
from mcphost2_util import gateway, http_upstream, mounted_upstream, stdio_command

HERE = Path(__file__).parent
PKG_PARENT = str(Path(ar.__file__).parent.parent)


@pytest.fixture(params=["stdio", "http"])
def reg(request: Any) -> Iterator[Registry]:
    r = Registry()
    with mounted_upstream(request.param, r):
        yield r


def test_image_and_text_reach_call_as_objects(reg: Registry) -> None:
    out = reg.call("up.picture")
    assert out == ["a tiny picture", Image(PNG, "image/png")]
    assert type(out[1]) is Image and out[1].data == PNG and out[1].mime_type == "image/png"


def test_call_async_and_spawn_give_the_same_objects(reg: Registry) -> None:
    async def go() -> Any:
        return await reg.call_async("up.picture")

    expected = ["a tiny picture", Image(PNG, "image/png")]
    assert asyncio.run(go()) == expected
    assert reg.spawn("up.picture").result(30) == expected


def test_one_block_is_one_object(reg: Registry) -> None:
    out = reg.call("up.only_image")
    assert out == Image(PNG, "image/png")


def test_every_block_type(reg: Registry) -> None:
    out = reg.call("up.mixed")
    assert out[:5] == [
        "all kinds",
        Image(PNG, "image/png"),
        Audio(WAV, "audio/wav"),
        EmbeddedResource("note://a", text="hello", mime_type="text/plain"),
        EmbeddedResource("bin://b", blob=b"\x00\xff"),
    ]
    # A block type without a class stays its MCP dict.
    assert out[5]["type"] == "resource_link" and out[5]["uri"] == "note://linked"


def test_a_python_tool_calling_a_mounted_tool_gets_objects(reg: Registry) -> None:
    def relay() -> Any:
        got = reg.call("up.picture")
        assert isinstance(got[1], Image)
        return got[1]

    async def relay_async() -> Any:
        got = await reg.call_async("up.only_image")
        assert isinstance(got, Image)
        return got

    reg.tool(name="relay")(relay)
    reg.tool(name="relay_async")(relay_async)
    assert reg.call("relay") == Image(PNG, "image/png")
    assert reg.call("relay_async") == Image(PNG, "image/png")


def test_a_malformed_block_is_a_conversion_error_naming_it(reg: Registry) -> None:
    with pytest.raises(ar.ConversionError) as e:
        reg.call("up.bad_image")
    assert "content block 0" in str(e.value) and "base64" in str(e.value)


def cli(*args: str) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG_PARENT, str(HERE)]))
    return subprocess.run(
        [sys.executable, "-m", "agent_runtime", *args],
        capture_output=True, text=True, env=env, cwd=str(HERE), timeout=60, check=False,
    )


def test_json_callers_see_the_content_blocks() -> None:
    p = cli("--mcp-server", f"up={stdio_command()}", "call", "up.picture")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [
        "a tiny picture",
        {"type": "image", "data": base64.b64encode(PNG).decode(), "mimeType": "image/png"},
    ]


def test_the_gateway_reserves_the_blocks_as_they_came() -> None:
    import anyio

    from mcp import Client

    async def go(url: str) -> Any:
        async with Client(url, mode="legacy") as c:
            return await c.call_tool("up.picture", {}), await c.call_tool("up.mixed", {})

    with http_upstream() as up, gateway(up) as url:
        picture, mixed = anyio.run(go, url)
    assert not picture.is_error and picture.structured_content is None
    assert [b.type for b in picture.content] == ["text", "image"]
    img = picture.content[1]
    assert base64.b64decode(img.data) == PNG and img.mime_type == "image/png"
    kinds = [b.type for b in mixed.content]
    assert kinds == ["text", "image", "audio", "resource", "resource", "resource_link"]
    # Annotations survive the hop.
    assert mixed.content[1].annotations is not None and mixed.content[1].annotations.priority == 0.5
    assert mixed.content[5].uri == "note://linked"
