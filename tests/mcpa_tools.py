"""Tools for the MCP rich-content, logging, sampling and elicitation tests (issue 14)."""

from typing import Any, Dict, List, TypedDict, Union

import agent_runtime
from agent_runtime import Audio, Context, EmbeddedResource, Image, Message

PNG = b"\x89PNG\r\n\x1a\n\x00\x01\x02"
WAV = b"RIFF\x00\x00WAVEfmt "


@agent_runtime.tool(name="rich.image")
def image() -> Image:
    """A tiny PNG."""
    return Image(PNG, "image/png")


@agent_runtime.tool(name="rich.mixed")
async def mixed(caption: str) -> List[Union[str, Image, Audio, EmbeddedResource]]:
    """A caption, an image, audio and two embedded resources."""
    return [
        caption,
        Image(PNG, "image/png"),
        Audio(WAV, "audio/wav"),
        EmbeddedResource("file:///notes.txt", text="some notes", mime_type="text/plain"),
        EmbeddedResource("file:///blob.bin", blob=b"\x00\xff", mime_type="application/octet-stream"),
    ]


@agent_runtime.tool(name="rich.dict_like")
def dict_like() -> Dict[str, Any]:
    """A plain dict that is not a content block (an extra key): stays structured data."""
    return {"type": "image", "data": "AAAA", "mimeType": "image/png", "note": "not content"}


@agent_runtime.tool(name="rich.fail_typed")
def fail_typed(message: str) -> Dict[str, int]:
    """Fails; declares an object output schema the error must not be held to."""
    raise RuntimeError(message)


@agent_runtime.tool(name="rich.big_image")
def big_image(size: int) -> Image:
    """An image of `size` bytes."""
    return Image(b"\x00" * size, "image/png")


@agent_runtime.tool(
    name="schema.as_given",
    schema={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                "additionalProperties": False,
            }
        },
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        "additionalProperties": False,
    },
)
def as_given(name: str, address: Any = None) -> str:
    """A tool whose schema is written by hand (JSON Schema 2020-12)."""
    return f"{name} @ {(address or {}).get('city', '?')}"


@agent_runtime.tool(name="peer.log")
def log_levels(ctx: Context) -> int:
    """Log one message at each of debug, info, warning, error, emergency."""
    levels = ["debug", "info", "warning", "error", "emergency"]
    for level in levels:
        ctx.log(f"{level} message", level)
    return len(levels)


@agent_runtime.tool(name="peer.sample")
async def sample(prompt: str, ctx: Context) -> Dict[str, Any]:
    """Ask the client's LLM; report what came back."""
    r = await ctx.sample(prompt, max_tokens=50, system_prompt="be brief", temperature=0.25)
    return {"text": r.text, "model": r.model, "stop_reason": r.stop_reason}


@agent_runtime.tool(name="peer.sample_sync")
def sample_sync(prompt: str, ctx: Context) -> Dict[str, Any]:
    """`sample` from a sync tool."""
    r = ctx.sample_sync(
        [Message(prompt), Message("earlier answer", role="assistant"), "go on"], max_tokens=20
    )
    return {"text": r.text, "model": r.model, "stop_reason": r.stop_reason}


@agent_runtime.tool(name="peer.sample_image")
async def sample_image(ctx: Context) -> Image:
    """Ask the client's LLM for an image, and return it."""
    r = await ctx.sample([Message(Image(PNG, "image/png")), "draw it again"], max_tokens=10)
    assert isinstance(r.content, Image), r
    return r.content


@agent_runtime.tool(name="peer.sample_slow", timeout=0.5)
async def sample_slow(ctx: Context) -> str:
    """Sampling the client never answers in time (the tool's timeout is 0.5 s)."""
    r = await ctx.sample("take your time", max_tokens=5)
    return r.text or ""


@agent_runtime.tool(name="peer.sample_slow_sync", timeout=0.5)
def sample_slow_sync(ctx: Context) -> str:
    """`sample_slow` from a sync tool: its thread is blocked in the request until the timeout."""
    r = ctx.sample_sync("take your time", max_tokens=5)
    return r.text or ""


class Person(TypedDict):
    name: str
    age: int


NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


@agent_runtime.tool(name="peer.elicit")
async def elicit(ctx: Context) -> Dict[str, Any]:
    """Ask the user for a name."""
    return await ctx.elicit("Your name?", NAME_SCHEMA)


@agent_runtime.tool(name="peer.elicit_sync")
def elicit_sync(ctx: Context) -> Dict[str, Any]:
    """Ask the user for a Person (a TypedDict), from a sync tool."""
    return ctx.elicit_sync("Who are you?", Person)
