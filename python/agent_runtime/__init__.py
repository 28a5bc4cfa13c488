"""agent_runtime: a Rust host runtime for agent tools, usable from Python.

Register Python functions as tools with :func:`tool`; call any tool — Python or Rust — with
:func:`call` (sync) or :func:`call_async` (asyncio). Rust programs and the out-of-process
transports call the same registry.
"""
from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import os
import sys
from typing import Any, Callable, Mapping, TypeVar, overload

from . import _catalog, _native
from ._native import (
    MAX_DEPTH,
    AgentRuntimeError,
    Cancelled,
    Context,
    ConversionError,
    InvalidArguments,
    NotAllowed,
    NotSupported,
    RegistrationError,
    Task,
    ToolError,
    ToolNotFound,
    ToolTimeout,
    WorkerCrashed,
    allow_modules,
    discover,
    import_tools,
    isolation_stats,
    register_builtin_tools,
    register_diagnostic_tools,
    run_function,
    run_script,
    run_tool,
    shutdown,
    tasks,
    unsubscribe,
)
from ._peer import SamplingResult
from .content import Audio, EmbeddedResource, Image, Message
from .mcp_client import mount_mcp
from .schema import derive_tool_schema, make_coercer

__version__: str = _native.__version__

__all__ = [
    "MAX_DEPTH",
    "AgentRuntimeError",
    "Audio",
    "Cancelled",
    "Context",
    "ConversionError",
    "EmbeddedResource",
    "Image",
    "InvalidArguments",
    "Message",
    "NotAllowed",
    "NotSupported",
    "RegistrationError",
    "Registry",
    "SamplingResult",
    "Task",
    "ToolError",
    "ToolNotFound",
    "ToolTimeout",
    "WorkerCrashed",
    "allow_modules",
    "call",
    "call_async",
    "completion",
    "configure_isolation",
    "default_registry",
    "discover",
    "import_tools",
    "isolate_modules",
    "isolation_stats",
    "mount_mcp",
    "notify_resource_updated",
    "on",
    "prompt",
    "register_builtin_tools",
    "register_diagnostic_tools",
    "resource",
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

# Set by the isolation worker (agent_runtime._worker): there, `@tool(isolated=True)` leaves the
# function alone, since the worker calls it directly.
_in_worker = False
_isolated_modules: set = set()
_isolation_settings: dict = {}
_isolation_sys_path: list = []


def configure_isolation(
    *,
    size: int | None = None,
    max_calls: int | None = None,
    max_rss_mb: int | None = None,
    recycle_rss_mb: int | None = None,
    idle_timeout: float | None = 300.0,
    min_workers: int = 1,
    max_async_per_worker: int = 64,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    start_timeout: float = 60.0,
    cancel_grace: float = 1.0,
) -> None:
    """Configure the worker processes that run isolated tools (``@tool(isolated=True)``).

    ``size`` workers at most (default: the number of cores); each is retired after
    ``max_calls`` calls, or after a call leaving it above ``recycle_rss_mb`` of resident memory;
    one going above ``max_rss_mb`` during a call is killed and the call raises
    :class:`WorkerCrashed`. Workers idle for ``idle_timeout`` seconds stop (down to
    ``min_workers``, which are started ahead of the first call). A sync tool has a worker to
    itself (timing it out or cancelling it kills that worker); async tools share one, up to
    ``max_async_per_worker`` calls, and are cancelled in place (killed after ``cancel_grace``
    seconds if they do not stop). Workers run ``python`` (default: this interpreter,
    ``sys.executable``) with ``env`` added to this process's environment, in ``cwd``, and see
    this process's ``sys.path``. Idle workers with older settings are replaced.
    """
    settings = {
        "size": _count("size", size, 1),
        "max_calls": _count("max_calls", max_calls, 1),
        "max_rss_mb": _count("max_rss_mb", max_rss_mb, 1),
        "recycle_rss_mb": _count("recycle_rss_mb", recycle_rss_mb, 1),
        "idle_timeout": _seconds("idle_timeout", idle_timeout),
        "min_workers": _count("min_workers", min_workers, 0, optional=False),
        "max_async_per_worker": _count("max_async_per_worker", max_async_per_worker, 1, optional=False),
        "python": python,
        "env": dict(env or {}),
        "cwd": cwd,
        "start_timeout": _seconds("start_timeout", start_timeout, optional=False),
        "cancel_grace": _seconds("cancel_grace", cancel_grace, optional=False),
    }
    _apply_isolation(settings)
    _isolation_settings.clear()
    _isolation_settings.update(settings)


# What "forever" means for a number of seconds (the native side's `core::duration::FOREVER`):
# larger values, +inf included, are clamped to it.
_FOREVER_SECONDS = 100 * 365 * 86400.0
_MAX_COUNT = 2**63 - 1


def _seconds(name: str, value: Any, optional: bool = True) -> float | None:
    """A positive number of seconds (None when ``optional``); refused with the parameter named."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    v = float(value)
    if math.isnan(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return min(v, _FOREVER_SECONDS)


def _count(name: str, value: Any, minimum: int, optional: bool = True) -> int | None:
    """An integer of at least ``minimum`` (None when ``optional``); refused with the parameter named."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not minimum <= value <= _MAX_COUNT:
        raise ValueError(f"{name} must be an integer from {minimum} to {_MAX_COUNT}, got {value!r}")
    return value


def _apply_isolation(settings: dict[str, Any]) -> None:
    python = settings["python"] or sys.executable
    if not python:
        raise RuntimeError("sys.executable is empty (embedded interpreter?): pass configure_isolation(python=...)")
    env = dict(settings["env"])
    path = list(sys.path)
    env["AGENT_RUNTIME_SYS_PATH"] = json.dumps(path)
    _native._configure_isolation(
        python=os.fspath(python),
        args=["-m", "agent_runtime._worker"],
        env=sorted(env.items()),
        cwd=None if settings["cwd"] is None else os.fspath(settings["cwd"]),
        size=settings["size"],
        min_workers=settings["min_workers"],
        max_calls=settings["max_calls"],
        max_rss_mb=settings["max_rss_mb"],
        recycle_rss_mb=settings["recycle_rss_mb"],
        idle_timeout=settings["idle_timeout"],
        max_async_per_worker=settings["max_async_per_worker"],
        start_timeout=settings["start_timeout"],
        cancel_grace=settings["cancel_grace"],
    )
    _isolation_sys_path[:] = path


def _ensure_isolation() -> None:
    # Workers must see the modules this process can import: follow sys.path changes.
    if not _native._isolation_configured() or _isolation_sys_path != sys.path:
        if not _isolation_settings:
            configure_isolation()
        else:
            _apply_isolation(_isolation_settings)


def isolate_modules(*modules: str) -> None:
    """Make tools of these modules isolated (as with ``@tool(isolated=True)``) when they are
    imported afterwards; what the CLI's ``--isolate MODULE`` does."""
    _isolated_modules.update(modules)


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
        isolated: bool | None = None,
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
        isolated: bool | None = None,
    ) -> F | Callable[[F], F]:
        """Register ``fn`` as a tool; usable bare (``@tool``) or with options (``@tool(...)``).

        The input schema is derived from the signature and type hints (or given as ``schema``),
        the description from the docstring. The function is returned unchanged. Registering a
        different function under an existing name raises :class:`RegistrationError` unless
        ``replace=True``; re-registering the same function (a module reload) replaces it.

        ``isolated=True`` runs the tool in a pool of worker processes (see
        :func:`configure_isolation`): a crash, ``os._exit``, runaway memory or a hang there
        costs a worker, never this process. Arguments and results cross as JSON; the schema,
        validation, timeouts, cancellation, progress and exceptions behave as in-process. The
        function must be defined at the top level of an importable module. Default: isolated
        when its module was named in :func:`isolate_modules`.
        """

        def register(f: F) -> F:
            if not callable(f):
                raise TypeError(f"@tool needs a callable, got {f!r}")
            iso = isolated if isolated is not None else getattr(f, "__module__", None) in _isolated_modules
            if iso and _in_worker:
                return f
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
            if iso:
                self._register_isolated(
                    f, tool_name, desc, input_schema, output_schema, timeout, is_async, ctx_param, replace, schema is not None
                )
                return f
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
                schema_as_given=schema is not None,
            )
            return f

        if fn is not None:
            return register(fn)
        return register

    def _register_isolated(
        self,
        f: Any,
        tool_name: str,
        desc: str,
        input_schema: Any,
        output_schema: Any,
        timeout: float | None,
        is_async: bool,
        ctx_param: str | None,
        replace: bool,
        schema_as_given: bool = False,
    ) -> None:
        module, qualname = _origin(f)
        if isinstance(f, functools.partial) or not (inspect.isfunction(f) or inspect.isclass(f)):
            raise RegistrationError(
                f"isolated tool {tool_name!r}: only functions defined at the top level of a module can run in a worker, got {f!r}"
            )
        if module == "__main__" or not qualname or "<locals>" in qualname:
            where = "in __main__" if module == "__main__" else "inside a function"
            raise RegistrationError(
                f"isolated tool {tool_name!r}: {module}.{qualname} is defined {where}, so a worker process cannot import it; "
                "move it to the top level of an importable module"
            )
        _ensure_isolation()
        same = self.isolated_target(tool_name) == (module, qualname)
        self.register_isolated(
            module,
            qualname,
            tool_name,
            description=desc,
            input_schema=input_schema,
            output_schema=output_schema,
            timeout=timeout,
            is_async=is_async,
            context_param=ctx_param,
            replace=replace or same,
            schema_as_given=schema_as_given,
        )

    def tools(self) -> list[dict[str, Any]]:
        """Specs of all tools (dicts), sorted by name."""
        return self.specs()

    def _register_catalog(self, kind: str, key: str, f: Any, replace: bool, register: Callable[[bool], None]) -> None:
        """Register ``f`` as ``kind`` ``key``; the function that registered it before (a module
        reload) is replaced without ``replace``."""
        origins = self.__dict__.setdefault("_catalog_origins", {})
        register(replace or origins.get((kind, key)) == _origin(f))
        origins[(kind, key)] = _origin(f)

    def resource(
        self,
        uri: str,
        *,
        name: str | None = None,
        description: str | None = None,
        mime_type: str | None = None,
        replace: bool = False,
    ) -> Callable[[F], F]:
        """Register a function as the resource ``uri``, at import time::

            @agent_runtime.resource("file://notes/{day}", mime_type="text/markdown")
            def notes(day: str) -> str: ...

        A URI with ``{placeholders}`` (RFC 6570 level 1) is a resource template: each
        placeholder is a parameter of the function (checked here: a mismatch is a
        :class:`RegistrationError`), passed the matching part of the URI read (converted to the
        parameter's type). The function (sync or async, may take a :class:`Context`) returns
        ``str`` (text) or ``bytes`` (a blob). ``name`` defaults to the function's name, the
        description to its docstring. MCP clients list it (``resources/list`` or
        ``resources/templates/list``) and read it (``resources/read``); see
        :func:`notify_resource_updated`. The function is returned unchanged.
        """

        if not isinstance(uri, str):
            hint = " (use @resource(\"scheme://...\"), not a bare @resource)" if callable(uri) else ""
            raise TypeError(f"resource URI must be a str, got {type(uri).__name__}{hint}")

        def register(f: F) -> F:
            self._register_catalog(
                "resource",
                uri,
                f,
                replace,
                lambda r: _catalog.register_resource(
                    self, f, uri, name=name, description=description, mime_type=mime_type, replace=r
                ),
            )
            return f

        return register

    def prompt(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        replace: bool = False,
    ) -> Any:
        """Register a function as a prompt (bare ``@prompt`` or ``@prompt(name=...)``).

        Its parameters are the prompt's arguments (required unless defaulted, described from
        the docstring); it returns a ``str`` (one user message) or a list of :class:`Message`
        (content ``str``, :class:`Image`, :class:`Audio` or :class:`EmbeddedResource`; a plain
        ``str`` item is a user message). Sync or async; the function is returned unchanged.
        """

        def register(f: F) -> F:
            key = name or _default_name(f)
            self._register_catalog(
                "prompt",
                key,
                f,
                replace,
                lambda r: _catalog.register_prompt(self, f, name=key, description=description, replace=r),
            )
            return f

        if fn is not None:
            return register(fn)
        return register

    def completion(self, fn: F) -> F:
        """Register ``fn(ref_type, ref_name, argument, value, context) -> list[str]`` as the
        completion function (MCP ``completion/complete``): ``ref_type`` is ``"prompt"`` (then
        ``ref_name`` is the prompt's name) or ``"resource"`` (a template's URI); ``argument`` is
        the argument being typed, ``value`` what was typed so far, ``context`` the arguments
        already given. Sync or async; registering another replaces it. Without one, clients get
        no suggestions.
        """
        _catalog.set_completion(self, fn)
        return fn

    def remove_resource(self, uri: str) -> bool:
        """Remove the resource or template registered under ``uri``; True if it was there."""
        self.__dict__.get("_catalog_origins", {}).pop(("resource", uri), None)
        return _native._remove_resource(self, uri)

    def remove_prompt(self, name: str) -> bool:
        """Remove a prompt; True if it was there."""
        self.__dict__.get("_catalog_origins", {}).pop(("prompt", name), None)
        return _native._remove_prompt(self, name)

    def resources(self) -> list[dict[str, Any]]:
        """Specs of the static resources (dicts: ``uri``, ``name``, ``description``, ``mime_type``)."""
        return _native._resources(self)

    def resource_templates(self) -> list[dict[str, Any]]:
        """Specs of the resource templates (``uri`` is the template)."""
        return _native._resources(self, templates=True)

    def prompts(self) -> list[dict[str, Any]]:
        """Specs of the prompts (dicts: ``name``, ``description``, ``arguments``)."""
        return _native._prompts(self)

    def notify_resource_updated(self, uri: str) -> None:
        """Tell the MCP clients subscribed to ``uri`` (``resources/subscribe``) that it changed:
        they get ``notifications/resources/updated``."""
        if not isinstance(uri, str):
            raise TypeError(f"uri must be a str, got {type(uri).__name__}")
        _native._notify_resource_updated(self, uri)

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
resource = _default.resource
prompt = _default.prompt
completion = _default.completion
notify_resource_updated = _default.notify_resource_updated

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
