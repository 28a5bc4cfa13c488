"""Resources, prompts and completions: what ``Registry.resource``, ``Registry.prompt`` and
``Registry.completion`` register (MCP serves them next to the tools).

Each function is wrapped so its result reaches the native side in the form the core expects
(a resource: ``str`` or ``{"blob": base64}``; a prompt: ``str`` or a list of messages as JSON)
and called like a tool: sync functions on the runtime's Python threads, coroutine functions on
an asyncio loop, with an ``agent_runtime.Context`` when a parameter asks for one.
"""

from __future__ import annotations

import base64
import functools
import inspect
from typing import Any, Callable, Dict, List, Optional

from . import _native
from .content import Message
from .schema import derive_tool_schema, make_coercer

_Context = _native.Context


def _name(fn: Any) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return str(getattr(target, "__name__", None) or type(target).__name__)


def _wrap(fn: Callable[..., Any], is_async: bool, convert: Callable[[Any], Any]) -> Callable[..., Any]:
    """``fn`` with its result passed through ``convert``, keeping sync/async as it is."""
    if is_async:

        async def run_async(**kwargs: Any) -> Any:
            return convert(await fn(**kwargs))

        return run_async

    def run(**kwargs: Any) -> Any:
        return convert(fn(**kwargs))

    return run


def _resource_body(what: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {"blob": base64.b64encode(bytes(value)).decode("ascii")}
        raise TypeError(f"{what} must return str (text) or bytes (a blob), not {type(value).__name__}")

    return convert


def _prompt_messages(what: str) -> Callable[[Any], Any]:
    def one(i: int, m: Any) -> Any:
        if isinstance(m, str):
            return m
        if isinstance(m, Message):
            return m.to_json()
        raise TypeError(f"{what}: message [{i}] must be a str or an agent_runtime.Message, not {type(m).__name__}")

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, Message):
            return [value.to_json()]
        if isinstance(value, (list, tuple)):
            return [one(i, m) for i, m in enumerate(value)]
        raise TypeError(f"{what} must return a str or a list of agent_runtime.Message, not {type(value).__name__}")

    return convert


def _completions(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"a completion function must return a list of str, not {type(value).__name__}")
    for v in value:
        if not isinstance(v, str):
            raise TypeError(f"a completion function must return a list of str, got an item {v!r}")
    return list(value)


def _function_kwargs(fn: Callable[..., Any], description: Optional[str], replace: bool) -> Dict[str, Any]:
    """What ``_native._register_resource`` and ``_register_prompt`` take about ``fn`` itself:
    its schema, whether it is async, its argument coercer and context parameter."""
    sig = derive_tool_schema(fn, description=description, context_types=(_Context,), output=False)
    return {
        "description": sig.description,
        "input_schema": sig.input_schema,
        "is_async": sig.is_async,
        "coercer": make_coercer(fn, context_param=sig.context_param),
        "context_param": sig.context_param,
        "replace": replace,
    }


def register_resource(
    registry: Any,
    fn: Callable[..., Any],
    uri: str,
    *,
    name: Optional[str],
    description: Optional[str],
    mime_type: Optional[str],
    replace: bool,
) -> None:
    if not callable(fn):
        raise TypeError(f"@resource needs a callable, got {fn!r}")
    if not isinstance(uri, str):
        raise TypeError(f"resource URI must be a str, got {type(uri).__name__}")
    kw = _function_kwargs(fn, description, replace)
    res_name = name or _name(fn)
    body = _wrap(fn, kw["is_async"], _resource_body(f"resource function {res_name!r}"))
    _native._register_resource(registry, body, uri, res_name, mime_type=mime_type, **kw)


def register_prompt(
    registry: Any,
    fn: Callable[..., Any],
    *,
    name: Optional[str],
    description: Optional[str],
    replace: bool,
) -> None:
    if not callable(fn):
        raise TypeError(f"@prompt needs a callable, got {fn!r}")
    kw = _function_kwargs(fn, description, replace)
    prompt_name = name or _name(fn)
    render = _wrap(fn, kw["is_async"], _prompt_messages(f"prompt function {prompt_name!r}"))
    _native._register_prompt(registry, render, prompt_name, **kw)


def set_completion(registry: Any, fn: Optional[Callable[..., Any]]) -> None:
    if fn is None:
        _native._set_completion(registry, None)
        return
    if not callable(fn):
        raise TypeError(f"@completion needs a callable, got {fn!r}")
    target = fn.func if isinstance(fn, functools.partial) else fn
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )
    if is_async:

        async def run_async(
            ref_type: str, ref_name: str, argument: str, value: str, context: Dict[str, str]
        ) -> List[str]:
            return _completions(await fn(ref_type, ref_name, argument, value, context))

        _native._set_completion(registry, run_async, is_async=True)
        return

    def run(ref_type: str, ref_name: str, argument: str, value: str, context: Dict[str, str]) -> List[str]:
        return _completions(fn(ref_type, ref_name, argument, value, context))

    _native._set_completion(registry, run, is_async=False)


__all__ = ["register_prompt", "register_resource", "set_completion"]
