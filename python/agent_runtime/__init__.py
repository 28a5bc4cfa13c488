"""agent_runtime: a Rust host runtime for agent tools, usable from Python.

Register Python functions as tools with :func:`tool`; call any tool — Python or Rust — with
:func:`call` (sync) or :func:`call_async` (asyncio). Rust programs and the out-of-process
transports call the same registry.
"""
from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable, Mapping, TypeVar, overload

from . import _native
from ._native import (
    MAX_DEPTH,
    AgentRuntimeError,
    Cancelled,
    Context,
    ConversionError,
    InvalidArguments,
    NotAllowed,
    RegistrationError,
    Task,
    ToolError,
    ToolNotFound,
    ToolTimeout,
    allow_modules,
    discover,
    import_tools,
    register_builtin_tools,
    register_diagnostic_tools,
    run_function,
    run_script,
    run_tool,
    shutdown,
    tasks,
    unsubscribe,
)
from .schema import derive_tool_schema, make_coercer

__version__: str = _native.__version__

__all__ = [
    "MAX_DEPTH",
    "AgentRuntimeError",
    "Cancelled",
    "Context",
    "ConversionError",
    "InvalidArguments",
    "NotAllowed",
    "RegistrationError",
    "Registry",
    "Task",
    "ToolError",
    "ToolNotFound",
    "ToolTimeout",
    "allow_modules",
    "call",
    "call_async",
    "default_registry",
    "discover",
    "import_tools",
    "on",
    "register_builtin_tools",
    "register_diagnostic_tools",
    "run_function",
    "run_script",
    "run_tool",
    "shutdown",
    "spawn",
    "tasks",
    "tool",
    "tools",
    "unsubscribe",
]

_log = logging.getLogger("agent_runtime")

F = TypeVar("F", bound=Callable[..., Any])


def _default_name(fn: Any) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(target, "__name__", None)
    if name is None:
        name = type(target).__name__
    return str(name)


def _origin(fn: Any) -> Any:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return (getattr(target, "__module__", None), getattr(target, "__qualname__", None))


def _is_async(fn: Any) -> bool:
    target = fn.func if isinstance(fn, functools.partial) else fn
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


_native_call_async = _native.Registry.call_async


class Registry(_native.Registry):
    """A set of tools.

    ``Registry()`` creates an independent registry; the process-wide default one (used by
    :func:`tool`, :func:`call` and every transport) is :func:`default_registry`.
    """

    @overload
    def tool(self, fn: F) -> F: ...

    @overload
    def tool(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        schema: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        schema: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> F | Callable[[F], F]:
        """Register ``fn`` as a tool; usable bare (``@tool``) or with options (``@tool(...)``).

        The input schema is derived from the signature and type hints (or given as ``schema``),
        the description from the docstring. The function is returned unchanged. Registering a
        different function under an existing name raises :class:`RegistrationError` unless
        ``replace=True``; re-registering the same function (a module reload) replaces it.
        """

        def register(f: F) -> F:
            if not callable(f):
                raise TypeError(f"@tool needs a callable, got {f!r}")
            tool_name = name or _default_name(f)
            if schema is not None:
                input_schema = schema
                try:
                    sig = derive_tool_schema(f, description=description, context_types=(Context,))
                    desc, output_schema, ctx_param = sig.description, sig.output_schema, sig.context_param
                except TypeError:
                    desc = description if description is not None else inspect.cleandoc(f.__doc__ or "")
                    output_schema, ctx_param = None, None
                is_async = _is_async(f)
            else:
                sig = derive_tool_schema(f, description=description, context_types=(Context,))
                input_schema, desc, output_schema, is_async, ctx_param = (
                    sig.input_schema,
                    sig.description,
                    sig.output_schema,
                    sig.is_async,
                    sig.context_param,
                )
            existing = self.function(tool_name)
            same = existing is not None and _origin(existing) == _origin(f)
            self.register(
                f,
                tool_name,
                description=desc,
                input_schema=input_schema,
                output_schema=output_schema,
                timeout=timeout,
                is_async=is_async,
                coercer=make_coercer(f, context_param=ctx_param),
                context_param=ctx_param,
                replace=replace or same,
            )
            return f

        if fn is not None:
            return register(fn)
        return register

    def tools(self) -> list[dict[str, Any]]:
        """Specs of all tools (dicts), sorted by name."""
        return self.specs()

    async def call_async(
        self,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        on_progress: Callable[[float, float | None, str | None], Any] | None = None,
    ) -> Any:
        """Call a tool from asyncio (a coroutine, so ``asyncio.run(call_async(...))`` works).

        Async Python tools run in the caller's task, sync Python tools in a worker thread, Rust
        tools on tokio; cancelling the awaiting task cancels the call. ``timeout`` overrides
        the tool's default; ``on_progress(done, total, message)`` receives progress reports.
        """
        return await _native_call_async(self, name, args, timeout=timeout, on_progress=on_progress)


_default = Registry(shared=True)


def default_registry() -> Registry:
    """The process-wide registry that :func:`tool`, :func:`call` and the transports use."""
    return _default


tool = _default.tool
call = _default.call
call_async = _default.call_async
spawn = _default.spawn

_EVENTS = ("tool.started", "tool.finished", "tool.failed")


def on(*events: str) -> Callable[[F], F]:
    """Register ``fn(event: dict)`` for call events, at import time::

        @agent_runtime.on("tool.failed")
        def report(event): ...

    ``event`` has ``event``, ``tool``, ``call_id``, ``duration`` (seconds) and ``error``
    (``{"type", "message"}`` or None). With no names, all events. Hooks run synchronously on the
    thread that made or ran the call, so keep them quick; an exception in a hook is logged on the
    ``agent_runtime`` logger and never affects the call. ``fn._agent_runtime_subscription`` holds
    the id for :func:`unsubscribe`.
    """
    for e in events:
        if e not in _EVENTS:
            raise ValueError(f"unknown event {e!r}: expected one of {', '.join(_EVENTS)}")

    def register(fn: F) -> F:
        def safe(event: dict[str, Any]) -> None:
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - a hook must never break a call
                _log.exception("event hook %r failed on %s", fn, event.get("event"))

        sub = _native.subscribe(list(events), safe)
        try:
            fn._agent_runtime_subscription = sub  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
        return fn

    return register


def tools() -> list[dict[str, Any]]:
    """Specs of every tool in the default registry, sorted by name."""
    return _default.specs()
