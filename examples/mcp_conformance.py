"""The MCP conformance suite's fixtures, written with agent-runtime's public API only.

Serve it and run the official suite against it::

    agent-runtime --path examples --import mcp_conformance serve --mcp-http --port 8765
    npx @modelcontextprotocol/conformance server --url http://127.0.0.1:8765/mcp --suite all

Tools, resources, prompts and the completion function below are what the suite's scenarios
call (names, URIs and arguments as the suite's reference server has them); each is an ordinary
decorated function, as a FastMCP server's would be.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, Dict, List, Optional, Union

import agent_runtime
from agent_runtime import Audio, Context, EmbeddedResource, Image, Message

# A 1x1 red PNG and a minimal WAV file.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
WAV = base64.b64decode("UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=")

# ----- tools -----------------------------------------------------------------------------


@agent_runtime.tool
def test_simple_text() -> str:
    """Tests simple text content response."""
    return "This is a simple text response for testing."


@agent_runtime.tool
def test_image_content() -> Image:
    """Tests image content response."""
    return Image(PNG, "image/png")


@agent_runtime.tool
def test_audio_content() -> Audio:
    """Tests audio content response."""
    return Audio(WAV, "audio/wav")


@agent_runtime.tool
def test_embedded_resource() -> EmbeddedResource:
    """Tests embedded resource content response."""
    return EmbeddedResource(
        "test://embedded-resource", text="This is an embedded resource content.", mime_type="text/plain"
    )


@agent_runtime.tool
def test_multiple_content_types() -> List[Union[str, Image, EmbeddedResource]]:
    """Tests response with multiple content types (text, image, resource)."""
    return [
        "Multiple content types test:",
        Image(PNG, "image/png"),
        EmbeddedResource(
            "test://mixed-content-resource",
            text=json.dumps({"test": "data", "value": 123}),
            mime_type="application/json",
        ),
    ]


@agent_runtime.tool
async def test_tool_with_logging(ctx: Context) -> str:
    """Tests tool that emits log messages during execution."""
    ctx.log("Tool execution started", "info")
    await asyncio.sleep(0.05)
    ctx.log("Tool processing data", "info")
    await asyncio.sleep(0.05)
    ctx.log("Tool execution completed", "info")
    return "Tool with logging executed successfully"


@agent_runtime.tool
async def test_tool_with_progress(ctx: Context) -> str:
    """Tests tool that reports progress notifications."""
    for step in (0, 50, 100):
        ctx.progress(step, 100, f"Completed step {step} of 100")
        if step < 100:
            await asyncio.sleep(0.05)
    return "Progress reported"


@agent_runtime.tool
def test_error_handling() -> str:
    """Tests error response handling."""
    raise RuntimeError("This tool intentionally returns an error for testing")


@agent_runtime.tool
async def test_reconnection() -> str:
    """Tests SSE stream disconnection and client reconnection (SEP-1699)."""
    await asyncio.sleep(0.1)
    return "Reconnection test completed successfully."


@agent_runtime.tool
async def test_sampling(prompt: str, ctx: Context) -> str:
    """Tests server-initiated sampling (LLM completion request).

    Args:
        prompt: The prompt to send to the LLM
    """
    answer = await ctx.sample(prompt, max_tokens=100)
    return f"LLM response: {answer.content}"


_ELICIT_USER = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}


@agent_runtime.tool
async def test_elicitation(message: str, ctx: Context) -> str:
    """Tests server-initiated elicitation (user input request).

    Args:
        message: The message to show the user
    """
    r = await ctx.elicit(message, _ELICIT_USER)
    return f"User response: action={r['action']}, content={json.dumps(r.get('content') or {})}"


_ELICIT_DEFAULTS = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
    "required": [],
}


@agent_runtime.tool
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Tests elicitation with default values per SEP-1034."""
    r = await ctx.elicit("Please review and update the form fields with defaults", _ELICIT_DEFAULTS)
    return f"Elicitation completed: action={r['action']}, content={json.dumps(r.get('content') or {})}"


_ELICIT_ENUMS = {
    "type": "object",
    "properties": {
        "untitledSingle": {
            "type": "string",
            "description": "Select one option",
            "enum": ["option1", "option2", "option3"],
        },
        "titledSingle": {
            "type": "string",
            "description": "Select one option with titles",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "description": "Select one option (legacy)",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "description": "Select multiple options",
            "minItems": 1,
            "maxItems": 3,
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "description": "Select multiple options with titles",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
    "required": [],
}


@agent_runtime.tool
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Tests elicitation with enum schema improvements per SEP-1330."""
    r = await ctx.elicit("Please select options from the enum fields", _ELICIT_ENUMS)
    return f"Elicitation completed: action={r['action']}, content={json.dumps(r.get('content') or {})}"


@agent_runtime.tool(
    schema={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
            }
        },
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        "additionalProperties": False,
    }
)
def json_schema_2020_12_tool(name: Optional[str] = None, address: Optional[Dict[str, str]] = None) -> str:
    """Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)."""
    args: Dict[str, Any] = {}
    if name is not None:
        args["name"] = name
    if address is not None:
        args["address"] = address
    return f"JSON Schema 2020-12 tool called with: {json.dumps(args)}"


# ----- resources -------------------------------------------------------------------------


@agent_runtime.resource("test://static-text", name="static-text", mime_type="text/plain")
def static_text() -> str:
    """A static text resource for testing."""
    return "This is the content of the static text resource."


@agent_runtime.resource("test://static-binary", name="static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A static binary resource (image) for testing."""
    return PNG


@agent_runtime.resource("test://template/{id}/data", name="template", mime_type="application/json")
def template_data(id: str) -> str:
    """A resource template with parameter substitution."""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@agent_runtime.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
async def watched_resource() -> str:
    """A resource clients may subscribe to (see agent_runtime.notify_resource_updated)."""
    return "Watched resource content"


# ----- prompts ---------------------------------------------------------------------------


@agent_runtime.prompt
def test_simple_prompt() -> str:
    """A simple prompt without arguments."""
    return "This is a simple prompt for testing."


@agent_runtime.prompt
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt with required arguments.

    Args:
        arg1: First test argument
        arg2: Second test argument
    """
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@agent_runtime.prompt
async def test_prompt_with_embedded_resource(resourceUri: str) -> List[Message]:
    """A prompt that includes an embedded resource.

    Args:
        resourceUri: URI of the resource to embed
    """
    return [
        Message(EmbeddedResource(resourceUri, text="Embedded resource content for testing.", mime_type="text/plain")),
        Message("Please process the embedded resource above."),
    ]


@agent_runtime.prompt
def test_prompt_with_image() -> List[Message]:
    """A prompt that includes image content."""
    return [Message(Image(PNG, "image/png")), Message("Please analyze the image above.")]


# ----- completion ------------------------------------------------------------------------

_SUGGESTIONS = {"arg1": ["paris", "park", "party"], "arg2": ["world", "word", "work"]}


@agent_runtime.completion
def complete(ref_type: str, ref_name: str, argument: str, value: str, context: Dict[str, str]) -> List[str]:
    """Suggestions for the arguments of test_prompt_with_arguments, by prefix."""
    if ref_type == "prompt" and ref_name == "test_prompt_with_arguments":
        return [s for s in _SUGGESTIONS.get(argument, []) if s.startswith(value)]
    return []
