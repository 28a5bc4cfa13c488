"""MCP prompts and completions (issue 14, points 5 and 6): `@agent_runtime.prompt` and
`@agent_runtime.completion` functions served by `agent-runtime serve`, driven by the official
Python MCP client over stdio and streamable HTTP (2026 discovery and the legacy handshake):
listing, rendering (sync and async, str and Message lists with rich content), bad input,
list changes, completion answers and the empty answer without a completion function."""

import asyncio
import base64
import sys

import agent_runtime
import pytest
from servers import ServerProcess

if sys.version_info < (3, 10):
    pytest.skip("the MCP Python SDK needs Python 3.10+", allow_module_level=True)
mcp = pytest.importorskip("mcp", reason="MCP tests need the `mcp` package (pip install mcp)")

from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference, ResourceTemplateReference
from mcp_sdk_clients import TRANSPORTS, Serve, run

from mcp import Client

SERVE = Serve(["--import", "mcpb_catalog"])
http_server = SERVE.http_server_fixture()
client_for = SERVE.client


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_list_and_get(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            assert c.server_capabilities.prompts is not None and c.server_capabilities.prompts.list_changed
            prompts = {p.name: p for p in (await c.list_prompts()).prompts}
            assert set(prompts) >= {"greet", "review", "explode", "bad_prompt"}
            greet = prompts["greet"]
            assert greet.description == "Greet someone."
            args = {a.name: a for a in greet.arguments}
            assert (args["name"].required, args["name"].description) == (True, "Who to greet")
            assert (args["excited"].required, args["excited"].description) == (False, "Whether to shout")
            assert prompts["review"].description == "Review a piece of code."

            # A str result: one user text message; "true" converted to the bool parameter.
            r = await c.get_prompt("greet", {"name": "Ada", "excited": "true"})
            (m,) = r.messages
            assert (m.role, m.content.type, m.content.text) == ("user", "text", "Hello, Ada!")
            assert r.description == "Greet someone."
            r = await c.get_prompt("greet", {"name": "Bob"})
            assert r.messages[0].content.text == "Hello, Bob."

            # An async function returning Messages with rich content; "3" → int.
            r = await c.get_prompt("review", {"code": "x = 1", "lines": "3"})
            kinds = [(m.role, m.content.type) for m in r.messages]
            assert kinds == [
                ("user", "text"),
                ("user", "resource"),
                ("user", "image"),
                ("assistant", "text"),
                ("user", "text"),
            ]
            assert r.messages[0].content.text == "Review these 3 lines:"
            res = r.messages[1].content.resource
            assert (str(res.uri), res.text, res.mime_type) == ("file:///code.py", "x = 1", "text/x-python")
            img = r.messages[2].content
            assert base64.b64decode(img.data) == b"\x89PNG\r\n\x1a\n-not-really" and img.mime_type == "image/png"
            assert r.messages[4].content.text == "And a plain string item."

    run(main())


@pytest.mark.parametrize("kind", ["stdio", "http-legacy"])
def test_bad_input_is_a_clear_mcp_error(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            with pytest.raises(MCPError) as e:
                await c.get_prompt("greet", {})
            assert e.value.code == -32602
            assert "prompt 'greet': missing required argument 'name'" in e.value.message
            with pytest.raises(MCPError) as e:
                await c.get_prompt("greet", {"name": "a", "mood": "x"})
            assert e.value.code == -32602 and "no argument 'mood'" in e.value.message
            with pytest.raises(MCPError) as e:
                await c.get_prompt("review", {"code": "", "lines": "many"})
            assert e.value.code == -32602 and "lines" in e.value.message
            with pytest.raises(MCPError) as e:
                await c.get_prompt("no_such_prompt", {})
            assert e.value.code == -32602 and "Unknown prompt: 'no_such_prompt'" in e.value.message
            # The function raising: an internal error with the exception's type and message.
            with pytest.raises(MCPError) as e:
                await c.get_prompt("explode", {"reason": "on purpose"})
            assert e.value.code == -32603
            assert "prompt 'explode' failed: RuntimeError: prompt failed: on purpose" in e.value.message
            assert e.value.data["type"] == "RuntimeError" and "Traceback" in e.value.data["traceback"]
            with pytest.raises(MCPError) as e:
                await c.get_prompt("bad_prompt", {})
            assert e.value.code == -32603 and "must return a str or a list of agent_runtime.Message" in e.value.message
            # Still serving.
            assert (await c.get_prompt("greet", {"name": "Z"})).messages[0].content.text == "Hello, Z."

    run(main())


@pytest.mark.parametrize("kind", ["stdio", "http-legacy"])
def test_list_changed_when_a_prompt_is_added(kind, http_server):
    async def main():
        changed = asyncio.Event()

        async def handler(message):
            root = getattr(message, "root", message)
            if getattr(root, "method", None) == "notifications/prompts/list_changed":
                changed.set()

        async with client_for(kind, http_server, legacy=True, message_handler=handler) as c:
            name = f"dyn_{kind.replace('-', '_')}"
            await c.call_tool("catalog.add_prompt", {"name": name, "text": "fresh"})
            await asyncio.wait_for(changed.wait(), 10)
            assert name in {p.name for p in (await c.list_prompts()).prompts}
            assert (await c.get_prompt(name)).messages[0].content.text == "fresh"

    run(main())


def test_prompt_list_changed_on_a_subscription_stream(http_server):
    async def main():
        async with Client(http_server.addr) as c, c.listen(prompts_list_changed=True) as sub:
            await c.call_tool("catalog.add_prompt", {"name": "dyn_listen", "text": "x"})
            event = await asyncio.wait_for(sub.__anext__(), 10)
            assert "prompt" in str(event).lower() or "prompt" in type(event).__name__.lower()

    run(main())


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_completion(kind, http_server):
    async def main():
        async with client_for(kind, http_server) as c:
            assert c.server_capabilities.completions is not None
            r = await c.complete(PromptReference(type="ref/prompt", name="greet"), {"name": "name", "value": "par"})
            assert r.completion.values == ["paris", "park", "party"]
            assert (r.completion.total, r.completion.has_more) == (3, False)
            # More than the protocol's 100 values: the first 100, the total and has_more.
            r = await c.complete(PromptReference(type="ref/prompt", name="greet"), {"name": "name", "value": "p"})
            assert len(r.completion.values) == 100 and r.completion.values[:3] == ["paris", "park", "party"]
            assert (r.completion.total, r.completion.has_more) == (153, True)
            # A resource template's argument, with the arguments given so far as context.
            r = await c.complete(
                ResourceTemplateReference(type="ref/resource", uri="cat://items/{n}/of/{owner}"),
                {"name": "owner", "value": "an"},
                context_arguments={"n": "7"},
            )
            assert r.completion.values == ["7-an"]
            r = await c.complete(PromptReference(type="ref/prompt", name="other"), {"name": "x", "value": ""})
            assert r.completion.values == []
            with pytest.raises(MCPError) as e:
                await c.complete(PromptReference(type="ref/prompt", name="greet"), {"name": "name", "value": "boom"})
            assert e.value.code == -32603 and "KeyError" in e.value.message and "completion exploded" in e.value.message

    run(main())


def test_no_completion_function_means_no_suggestions():
    s = ServerProcess(["--import", "sample_tools", "serve", "--mcp-http", "127.0.0.1:0"])
    try:

        async def main():
            async with Client(s.addr) as c:
                assert c.server_capabilities.completions is not None
                r = await c.complete(PromptReference(type="ref/prompt", name="any"), {"name": "a", "value": "x"})
                assert r.completion.values == [] and not r.completion.has_more
                assert (await c.list_prompts()).prompts == []
                assert (await c.list_resources()).resources == []

        run(main())
    finally:
        assert s.stop() == 0, "".join(s.lines)


# ----- registration (in-process) -----


def test_prompt_and_completion_registration():
    reg = agent_runtime.Registry()

    @reg.prompt
    def p1(a: str, b: int = 2) -> str:
        """Doc line.

        Args:
            a: the a
        """
        return a * b

    @reg.prompt(name="p2", description="given")
    async def whatever(ctx: agent_runtime.Context) -> str:
        return ""

    specs = {p["name"]: p for p in reg.prompts()}
    assert specs["p1"]["description"] == "Doc line."
    assert specs["p1"]["arguments"] == [
        {"name": "a", "description": "the a", "required": True},
        {"name": "b", "required": False},
    ]
    # The Context parameter is not an argument.
    assert specs["p2"] == {"name": "p2", "description": "given", "arguments": []}
    # Re-registering the same function replaces it; another function under the name is refused.
    reg.prompt(p1)
    with pytest.raises(agent_runtime.RegistrationError, match="already registered"):
        reg.prompt(name="p1")(whatever)
    reg.prompt(name="p1", replace=True)(whatever)
    assert reg.remove_prompt("p1") is True and reg.remove_prompt("p1") is False
    with pytest.raises(TypeError, match="needs a callable"):
        reg.prompt(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a callable"):
        reg.completion(5)  # type: ignore[arg-type]

    def comp(ref_type, ref_name, argument, value, context):
        return []

    assert reg.completion(comp) is comp


SYNC_MODULE = """
import agent_runtime

@agent_runtime.completion
def complete(ref_type, ref_name, argument, value, context):
    return [f"{ref_type}:{ref_name}:{argument}:{value}:{sorted(context.items())}"]

@agent_runtime.prompt
def who(ctx: agent_runtime.Context, name: str = "x") -> list:
    return [agent_runtime.Message(f"{name} via {ctx.tool}")]
"""


def test_sync_completion_and_a_prompt_taking_a_context(tmp_path):
    (tmp_path / "mcpb_sync_catalog.py").write_text(SYNC_MODULE)
    s = ServerProcess(["--path", str(tmp_path), "--import", "mcpb_sync_catalog", "serve", "--mcp-http", "127.0.0.1:0"])
    try:

        async def main():
            async with Client(s.addr) as c:
                r = await c.complete(
                    PromptReference(type="ref/prompt", name="who"), {"name": "name", "value": "a"}, {"k": "v"}
                )
                assert r.completion.values == ["prompt:who:name:a:[('k', 'v')]"]
                (m,) = (await c.get_prompt("who", {"name": "Q"})).messages
                assert m.content.text == "Q via prompt who"

        run(main())
    finally:
        assert s.stop() == 0, "".join(s.lines)
