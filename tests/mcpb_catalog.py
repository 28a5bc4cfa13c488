"""Resources, prompts and a completion function for the MCP catalog tests (test_mcp_resources,
test_mcp_prompts), plus tools that change the catalog at run time."""

from __future__ import annotations

import asyncio
from typing import Dict, List

import agent_runtime
from agent_runtime import Context, EmbeddedResource, Image, Message

PNG = b"\x89PNG\r\n\x1a\n-not-really"

# ----- resources -----


@agent_runtime.resource("cat://text", mime_type="text/plain")
def cat_text() -> str:
    """Plain text, read by a sync function."""
    return "hello from a sync resource"


@agent_runtime.resource("cat://blob", name="blob", mime_type="image/png")
async def cat_blob() -> bytes:
    """Bytes, read by a coroutine."""
    await asyncio.sleep(0)
    return PNG


@agent_runtime.resource("cat://untyped")
def cat_untyped() -> str:
    return "no mime type declared"


@agent_runtime.resource("cat://items/{n}/of/{owner}", description="Item n of an owner.")
def cat_item(n: int, owner: str, ctx: Context) -> str:
    # n arrives as an int (converted from the URI's text); a Context is passed as for tools.
    return f"item {n + 1} of {owner} (read by {ctx.tool!r})"


@agent_runtime.resource("cat://async/{key}")
async def cat_async(key: str) -> str:
    await asyncio.sleep(0.01)
    return f"async {key}"


def _note(marker: str, text: str) -> None:
    with open(marker, "a") as f:
        f.write(text + "\n")


@agent_runtime.resource("cat://slow/{marker}")
async def cat_slow(marker: str) -> str:
    """Write 'started' to the file `marker` (a percent-encoded path), sleep, record how it ended."""
    _note(marker, "started")
    outcome = "finished"
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        _note(marker, outcome)
    return "slept"


@agent_runtime.resource("cat://broken")
def cat_broken() -> str:
    raise ValueError("the disk is on fire")


@agent_runtime.resource("cat://wrong-type")
def cat_wrong_type() -> int:
    return 42


# ----- prompts -----


@agent_runtime.prompt
def greet(name: str, excited: bool = False) -> str:
    """Greet someone.

    Args:
        name: Who to greet
        excited: Whether to shout
    """
    return f"Hello, {name}{'!' if excited else '.'}"


@agent_runtime.prompt(name="review", description="Review a piece of code.")
async def review_prompt(code: str, lines: int = 10) -> List[Message]:
    await asyncio.sleep(0)
    return [
        Message(f"Review these {lines} lines:"),
        Message(EmbeddedResource("file:///code.py", text=code, mime_type="text/x-python")),
        Message(Image(PNG, "image/png")),
        Message("Looks fine to me.", role="assistant"),
        "And a plain string item.",
    ]


@agent_runtime.prompt
def explode(reason: str) -> str:
    raise RuntimeError(f"prompt failed: {reason}")


@agent_runtime.prompt
def bad_prompt() -> Dict[str, str]:
    return {"not": "messages"}


# ----- completion -----

CITIES = ["paris", "park", "party", "rome"] + [f"p{i:03d}" for i in range(150)]


@agent_runtime.completion
async def complete(ref_type: str, ref_name: str, argument: str, value: str, context: Dict[str, str]) -> List[str]:
    if value == "boom":
        raise KeyError("completion exploded")
    if ref_type == "prompt" and ref_name == "greet" and argument == "name":
        return [c for c in CITIES if c.startswith(value)]
    if ref_type == "resource" and argument == "owner":
        return [f"{context.get('n', '?')}-{value}"]
    return []


# ----- tools that change the catalog at run time -----


@agent_runtime.tool(name="catalog.touch")
def touch(uri: str) -> bool:
    """Announce that a resource changed."""
    agent_runtime.notify_resource_updated(uri)
    return True


@agent_runtime.tool(name="catalog.add_resource")
def add_resource(uri: str, text: str) -> bool:
    def read() -> str:
        return text

    agent_runtime.resource(uri, name=uri, replace=True)(read)
    return True


@agent_runtime.tool(name="catalog.remove_resource")
def remove_resource(uri: str) -> bool:
    return agent_runtime.default_registry().remove_resource(uri)


@agent_runtime.tool(name="catalog.add_prompt")
def add_prompt(name: str, text: str) -> bool:
    def render() -> str:
        return text

    agent_runtime.prompt(name=name, replace=True)(render)
    return True
