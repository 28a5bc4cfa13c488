"""An upstream MCP server written with the Python SDK (`mcp` 2.x MCPServer) for the mount tests of
rich content, live resource/prompt lists and per-call routing of logs and sampling.
Run: `python mcphost2_upstream.py stdio` or `python mcphost2_upstream.py http PORT`."""

import asyncio
import base64
import sys
from typing import Any, List

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("mcphost2-upstream")

PNG = bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 1, 2, 250, 251, 252])
WAV = b"RIFF\x00\x01\x02\x03WAVEfmt "


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@server.tool()
def picture() -> types.CallToolResult:
    """A caption and an image."""
    return types.CallToolResult(
        content=[
            types.TextContent(text="a tiny picture"),
            types.ImageContent(data=_b64(PNG), mime_type="image/png"),
        ]
    )


@server.tool()
def only_image() -> types.CallToolResult:
    return types.CallToolResult(content=[types.ImageContent(data=_b64(PNG), mime_type="image/png")])


@server.tool()
def mixed() -> types.CallToolResult:
    """Every block type: text, image (annotated), audio, embedded text and blob resources, a link."""
    return types.CallToolResult(
        content=[
            types.TextContent(text="all kinds"),
            types.ImageContent(
                data=_b64(PNG), mime_type="image/png", annotations=types.Annotations(priority=0.5)
            ),
            types.AudioContent(data=_b64(WAV), mime_type="audio/wav"),
            types.EmbeddedResource(
                resource=types.TextResourceContents(uri="note://a", text="hello", mime_type="text/plain")
            ),
            types.EmbeddedResource(
                resource=types.BlobResourceContents(uri="bin://b", blob=_b64(b"\x00\xff"))
            ),
            types.ResourceLink(uri="note://linked", name="linked"),
        ]
    )


@server.tool()
def bad_image() -> types.CallToolResult:
    return types.CallToolResult(content=[types.ImageContent(data="not base64!", mime_type="image/png")])


@server.resource("note://first", name="first")
def first() -> str:
    return "first note"


@server.prompt(name="greet")
def greet(who: str) -> str:
    return f"Hello {who}"


@server.tool()
async def add_note(name: str, text: str, ctx: Context) -> str:
    """Add resource note://NAME and tell the client its resource list changed."""

    def read() -> str:
        return text

    server.resource(f"note://{name}", name=name)(read)
    await ctx.session.send_resource_list_changed()
    return "added"


@server.tool()
async def add_prompt(name: str, ctx: Context) -> str:
    """Add prompt NAME and tell the client its prompt list changed."""

    def render() -> str:
        return f"prompt {name}"

    server.prompt(name=name)(render)
    await ctx.session.send_prompt_list_changed()
    return "added"


@server.tool()
async def touch(uri: str, ctx: Context) -> str:
    """Tell the client the resource URI changed."""
    await ctx.session.send_resource_updated(uri)
    return "touched"


@server.tool()
async def speak(word: str, delay: float, ctx: Context) -> str:
    """Log WORD after DELAY seconds (on this request's stream over HTTP), then return it."""
    await asyncio.sleep(delay)
    await ctx.info(f"said {word}")
    await asyncio.sleep(0.05)
    return word


@server.tool()
async def ask_model(word: str, delay: float, ctx: Context) -> str:
    """Ask the client's model about WORD after DELAY seconds; return its answer."""
    await asyncio.sleep(delay)
    r = await ctx.session.create_message(
        [types.SamplingMessage(role="user", content=types.TextContent(text=word))],
        max_tokens=10,
        related_request_id=ctx.request_id,
    )
    return r.content.text  # type: ignore[union-attr]


# Legacy resource subscriptions, which MCPServer does not offer: kept here so `touch_subscribed`
# notifies only about URIs a client subscribed to, as servers that track subscriptions do.
SUBSCRIBED = set()


async def _subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
    SUBSCRIBED.add(str(params.uri))
    return types.EmptyResult()


async def _unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    SUBSCRIBED.discard(str(params.uri))
    return types.EmptyResult()


server._lowlevel_server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, _subscribe)
server._lowlevel_server.add_request_handler(
    "resources/unsubscribe", types.UnsubscribeRequestParams, _unsubscribe
)


@server.tool()
async def touch_subscribed(uri: str, ctx: Context) -> bool:
    """Tell the client the resource URI changed, if it subscribed to it."""
    if uri not in SUBSCRIBED:
        return False
    await ctx.session.send_resource_updated(uri)
    return True


@server.tool()
def subscriptions() -> List[str]:
    return sorted(SUBSCRIBED)


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        asyncio.run(server.run_streamable_http_async(port=int(sys.argv[2])))
    else:
        server.run("stdio")
