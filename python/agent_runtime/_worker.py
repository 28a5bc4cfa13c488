"""Worker process main for isolated tools (``python -m agent_runtime._worker``).

Speaks the pool's framing on the pipes it was started with: 4-byte little-endian length, then a
JSON object (see ``src/worker/protocol.rs``). Standard library only, so it starts fast and runs
under any interpreter. The protocol pipes are moved off fds 0/1 at start: user ``print()``s go
to stderr (which the host forwards) and child processes cannot inherit the pipes; a process
forked by a tool closes them (only the worker itself may answer the host).

Nothing the worker sends is unpickled or evaluated by the host: an exception crosses as its
module, qualified name, JSON-able ``args``, message and traceback, and the host rebuilds it
only from a class it has already imported (``rebuild_exception``).

Sync tools run on the main thread, one call at a time (the pool never sends a worker a second
call while a sync one runs; a sync call is stopped by killing the worker). Async tools run as
tasks on one asyncio loop thread, many at once; a cancel frame cancels the task.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import enum
import faulthandler
import importlib
import io
import json
import logging
import math
import os
import re
import struct
import sys
import threading
import time
import traceback
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

_LEN = struct.Struct("<I")


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised in a worker (set as ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n(in the isolated worker process)\n{self.tb}"""'


def _exception_class(module: str, qualname: str) -> Optional[type]:
    """``module.qualname`` if it names an ``Exception`` subclass the host has *already*
    imported (nothing is imported, and only plain namespace lookups run: no ``__getattr__``,
    no descriptors), else None."""
    mod = sys.modules.get(module)
    if not isinstance(mod, types.ModuleType):
        return None
    obj: Any = mod
    for part in qualname.split("."):
        if not part.isidentifier() or part.startswith("__"):
            return None  # e.g. "<locals>": a class the host cannot name
        try:
            obj = vars(obj).get(part)
        except TypeError:
            return None
        if obj is None:
            return None
    # Exception, not BaseException: a tool's SystemExit/KeyboardInterrupt must not stop the host.
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def rebuild_exception(
    module: str, qualname: str, args_json: Optional[str], traceback_text: Optional[str]
) -> Optional[BaseException]:
    """The worker's exception rebuilt in the host as ``cls(*args)`` (host side).

    ``cls`` must be an already-imported exception class (see ``_exception_class``) and
    ``args`` plain JSON; returns None otherwise, or when the class refuses those arguments
    (the host then raises ``ToolError`` carrying the type name, message and traceback).
    """
    if args_json is None:
        return None
    cls = _exception_class(module, qualname)
    if cls is None:
        return None
    try:
        args = json.loads(args_json)
    except Exception:  # noqa: BLE001 - ValueError, RecursionError: not rebuildable
        return None
    if not isinstance(args, list):
        return None
    try:
        exc = cls(*args)
    except Exception:  # noqa: BLE001 - a class that cannot be built from its args: ToolError
        return None
    if not isinstance(exc, BaseException):
        return None
    if traceback_text:
        exc.__cause__ = RemoteTraceback(traceback_text)
        try:
            exc.remote_traceback = traceback_text  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
    return exc


def _json_default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(o)).decode("ascii")
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, (set, frozenset)):
        return list(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    dump = getattr(o, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if getattr(type(o), "__agent_runtime_content__", False):
        return o.to_json()  # Image, Audio, EmbeddedResource: their MCP content block
    raise TypeError(f"tool result of type {type(o).__name__} is not JSON serializable")


_dumps = json.JSONEncoder(default=_json_default, allow_nan=False, separators=(",", ":")).encode
_dumps_plain = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode

# The host reads JSON integers as 64-bit (i64 or u64); larger ones would turn into floats.
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
# Only an encoding with 19+ consecutive digits can hold such an integer: checked in C first.
_LONG_DIGITS = re.compile(r"[0-9]{19}").search


class ConversionFailure(Exception):
    """A value the host cannot receive exactly; ``path`` names where it is."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _find_big_int(v: Any, path: str) -> Optional[str]:
    stack: List[Tuple[Any, str]] = [(v, path)]
    while stack:
        o, p = stack.pop()
        if isinstance(o, bool):
            continue
        if isinstance(o, int):
            if not _INT_MIN <= o <= _INT_MAX:
                return p
        elif isinstance(o, dict):
            stack.extend((x, f"{p}.{k}") for k, x in o.items())
        elif isinstance(o, (list, tuple)):
            stack.extend((x, f"{p}[{i}]") for i, x in enumerate(o))
    return None


def encode_value(value: Any, path: str = "result") -> str:
    """``value`` as JSON the host reads back exactly, or ``ConversionFailure``."""
    try:
        text = _dumps(value)
    except RecursionError:
        raise ConversionFailure(path, "nested too deeply to encode as JSON") from None
    except ValueError as e:  # NaN/inf, circular references
        raise ConversionFailure(path, str(e)) from None
    except Exception as e:  # noqa: BLE001 - TypeError and whatever a model_dump raises
        raise ConversionFailure(path, f"{type(e).__name__}: {e}") from None
    if _LONG_DIGITS(text) is not None:
        # Rare: walk the value (the encoding may have converted it, e.g. a dataclass).
        try:
            where = _find_big_int(json.loads(text), path)
        except RecursionError:
            raise ConversionFailure(path, "nested too deeply to encode as JSON") from None
        if where is not None:
            raise ConversionFailure(where, "integer does not fit in 64 bits (JSON numbers cross as i64/u64)")
    return text


class WorkerContext:
    """What an isolated tool's ``Context`` parameter receives (same methods as ``agent_runtime.Context``)."""

    __slots__ = ("_cancelled", "_id", "_out", "call_id", "tool")

    def __init__(self, out: _Out, rid: int, call_id: int, tool: str) -> None:
        self._out = out
        self._id = rid
        self._cancelled = False
        self.call_id = call_id
        self.tool = tool

    @property
    def cancelled(self) -> bool:
        """True once the caller cancelled the call (async tools; sync ones are killed instead)."""
        return self._cancelled

    def check_cancelled(self) -> None:
        """Raise ``agent_runtime.Cancelled``-like ``asyncio.CancelledError`` if cancelled."""
        if self._cancelled:
            raise asyncio.CancelledError()

    def progress(self, done: float, total: Optional[float] = None, message: Optional[str] = None) -> None:
        """Report progress to the caller (non-finite numbers cannot cross JSON: such a report is
        dropped, a non-finite total sent as unknown)."""
        d = float(done)
        t = None if total is None else float(total)
        if not math.isfinite(d):
            return
        if t is not None and not math.isfinite(t):
            t = None
        self._out.send({"t": "progress", "id": self._id, "done": d, "total": t, "message": None if message is None else _text(str(message))})

    def log(self, message: str, level: str = "info") -> None:
        """Log ``message`` on the ``agent_runtime.tools`` logger (the worker's stderr)."""
        if level not in ("debug", "info", "warning", "error", "critical"):
            raise ValueError(f"unknown log level {level!r}")
        getattr(logging.getLogger("agent_runtime.tools"), level)(f"[{self.tool} #{self.call_id}] {message}")

    def __repr__(self) -> str:
        return f"<agent_runtime.Context tool={self.tool!r} call_id={self.call_id} isolated>"


def _text(s: str) -> str:
    # Lone surrogates (undecodable file names, say) would make the frame invalid JSON for the host.
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


class _Out:
    """The reply pipe; frames from several threads never interleave. Only the worker process
    writes: a process forked by a tool (which did not run the at-fork hook, e.g. via ctypes)
    drops its frames instead of answering in the worker's name."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pid = os.getpid()
        self.lock = threading.Lock()

    def raw(self, body: bytes) -> None:
        if os.getpid() != self.pid:
            return
        data = _LEN.pack(len(body)) + body
        with self.lock:
            n = os.write(self.fd, data)
            while n < len(data):  # a large frame may go out in pieces
                data = data[n:]
                n = os.write(self.fd, data)

    def send(self, msg: Dict[str, Any]) -> None:
        self.raw(json.dumps(msg, separators=(",", ":"), allow_nan=False).encode())

    def ok(self, rid: int, value: Any) -> None:
        try:
            # Spliced, not re-encoded: the value is serialized once.
            body = '{"t":"ok","id":' + str(rid) + ',"value":' + encode_value(value) + "}"
        except ConversionFailure as e:
            self.conversion(rid, e.path, str(e))
            return
        self.raw(body.encode())

    def conversion(self, rid: int, path: str, message: str) -> None:
        self.send({"t": "conv", "id": rid, "path": path, "message": message})

    def error(self, rid: int, exc: BaseException) -> None:
        """Describe ``exc`` for the host: never pickled (see ``rebuild_exception``)."""
        cls = type(exc)
        try:
            message = _text(str(exc))
        except Exception:  # noqa: BLE001 - a broken __str__ must not take the worker down
            message = f"<unprintable {cls.__qualname__}>"
        try:
            tb: Optional[str] = _text("".join(traceback.format_exception(cls, exc, exc.__traceback__)))
        except Exception:  # noqa: BLE001
            tb = None
        args: Optional[str]
        try:
            # A JSON text inside the frame: the host hands it to json.loads untouched, so
            # integers of any size come back exactly.
            args = _dumps_plain(list(exc.args))
        except Exception:  # noqa: BLE001 - args that are not plain JSON: the host raises ToolError
            args = None
        self.send(
            {
                "t": "err",
                "id": rid,
                "type": _text(str(cls.__qualname__)),
                "module": _text(str(cls.__module__)),
                "message": message,
                "traceback": tb,
                "args": args,
            }
        )


_Resolved = Tuple[Callable[..., Any], Optional[Callable[[Dict[str, Any]], Dict[str, Any]]]]


class _Worker:
    def __init__(self, out: _Out) -> None:
        self.out = out
        self.cache: Dict[Tuple[str, str], _Resolved] = {}
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.tasks: Dict[int, Tuple[asyncio.Task[Any], WorkerContext]] = {}

    def resolve(self, module: str, qualname: str, context_param: Optional[str]) -> _Resolved:
        key = (module, qualname)
        r = self.cache.get(key)
        if r is None:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                try:
                    obj = getattr(obj, part)
                except AttributeError:
                    raise AttributeError(f"isolated tool target {module}.{qualname} not found: no attribute {part!r}") from None
            fn = obj
            coercer = None
            try:
                from agent_runtime.schema import make_coercer

                coercer = make_coercer(fn, context_param=context_param)
            except ImportError:
                pass
            r = (fn, coercer)
            self.cache[key] = r
        return r

    def kwargs(self, msg: Dict[str, Any], coercer: Any, ctx: Optional[WorkerContext]) -> Dict[str, Any]:
        kw = msg["args"] or {}
        if coercer is not None:
            kw = coercer(kw)
        if ctx is not None:
            kw[msg["context_param"]] = ctx
        return kw

    def context(self, msg: Dict[str, Any]) -> Optional[WorkerContext]:
        if not msg.get("context_param"):
            return None
        return WorkerContext(self.out, msg["id"], msg.get("call_id", 0), msg["tool"])

    def call_sync(self, msg: Dict[str, Any]) -> None:
        rid = msg["id"]
        ctx_param = msg.get("context_param")
        try:
            fn, coercer = self.cache.get((msg["module"], msg["qualname"])) or self.resolve(msg["module"], msg["qualname"], ctx_param)
            kw = msg["args"] or {}
            if coercer is not None or ctx_param:
                kw = self.kwargs(msg, coercer, self.context(msg))
            result = fn(**kw)
        except BaseException as e:  # noqa: BLE001 - everything (SystemExit too) goes to the caller
            self.out.error(rid, e)
            return
        self.out.ok(rid, result)

    def ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="agent-runtime-worker-loop", daemon=True).start()
            self.loop = loop
        return self.loop

    def start_async(self, msg: Dict[str, Any]) -> None:
        rid = msg["id"]
        loop = self.loop
        assert loop is not None
        ctx = self.context(msg) or WorkerContext(self.out, rid, msg.get("call_id", 0), msg["tool"])

        async def run() -> None:
            try:
                fn, coercer = self.resolve(msg["module"], msg["qualname"], msg.get("context_param"))
                kw = self.kwargs(msg, coercer, ctx if msg.get("context_param") else None)
                result = await fn(**kw)
            except BaseException as e:  # noqa: BLE001 - everything goes back to the caller
                self.out.error(rid, e)
            else:
                self.out.ok(rid, result)
            finally:
                self.tasks.pop(rid, None)
                _leave_if_forked(self.out)

        self.tasks[rid] = (loop.create_task(run()), ctx)

    def cancel(self, rid: int) -> None:
        entry = self.tasks.get(rid)
        if entry is not None:
            entry[1]._cancelled = True
            entry[0].cancel()

    def serve(self, inp: io.BufferedReader) -> None:
        read = inp.read
        loads = json.loads
        while True:
            head = read(4)
            if len(head) < 4:
                return
            (n,) = _LEN.unpack(head)
            body = read(n)
            if len(body) < n:
                return
            msg = loads(body.decode())
            op = msg.get("op")
            if op == "call":
                if msg.get("async"):
                    self.ensure_loop().call_soon_threadsafe(self.start_async, msg)
                else:
                    self.call_sync(msg)
                    _leave_if_forked(self.out)
            elif op == "cancel" and self.loop is not None:
                self.loop.call_soon_threadsafe(self.cancel, msg["id"])
            elif op == "ping":
                # Answered from the loop: a pong means async calls still make progress.
                pong = {"t": "pong", "id": msg["id"]}
                if self.loop is None:
                    self.out.send(pong)
                else:
                    self.loop.call_soon_threadsafe(self.out.send, pong)


def _leave_if_forked(out: _Out) -> None:
    # A process a tool forked that returned into the worker's loop: it is not the worker.
    if os.getpid() != out.pid:
        os._exit(0)


def _close_in_child(fds: Tuple[int, ...]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _watch_parent(parent: int) -> None:
    # A sync call that never returns would otherwise outlive a host that died without killing us.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(70)


def main() -> None:
    """Run the worker loop until the host closes the pipe."""
    inp_fd = os.dup(0)
    out_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    try:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass
    # Only the crashing thread: the stderr tail in `WorkerCrashed` is short.
    faulthandler.enable(all_threads=False)
    os.environ.pop("AGENT_RUNTIME_WORKER", None)
    extra = os.environ.pop("AGENT_RUNTIME_SYS_PATH", "")
    if extra:
        for p in reversed(json.loads(extra)):
            if p not in sys.path:
                sys.path.insert(0, p)
    try:
        import agent_runtime

        agent_runtime._in_worker = True  # type: ignore[attr-defined]
    except ImportError:
        pass
    for module in filter(None, os.environ.pop("AGENT_RUNTIME_WORKER_PRELOAD", "").split(",")):
        try:
            importlib.import_module(module)
        except BaseException:  # noqa: BLE001 - reported again, to the caller, on first call
            traceback.print_exc()
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    # A tool's fork() child must not hold the protocol pipes: the host sees the worker's end
    # of stream when the worker ends, and only the worker can answer.
    os.register_at_fork(after_in_child=lambda: _close_in_child((inp_fd, out_fd)))
    out = _Out(out_fd)
    out.send({"t": "ready", "pid": os.getpid()})
    _Worker(out).serve(open(inp_fd, "rb", buffering=65536))  # noqa: SIM115 - lives as long as the process


if __name__ == "__main__":
    main()
