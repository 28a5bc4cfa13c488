"""Type stubs for the Rust extension module ``agent_runtime._native``."""

from typing import Any, Awaitable, Callable, Dict, Generator, List, Mapping, Optional, Sequence, Tuple, Union

from typing_extensions import Self, TypeAlias, disjoint_base, final

from ._peer import SamplingResult
from .content import Message

__version__: str
MAX_DEPTH: int
ABI3: bool

class AgentRuntimeError(Exception): ...

class ToolNotFound(AgentRuntimeError, LookupError):
    name: str
    suggestions: List[str]

class InvalidArguments(AgentRuntimeError, ValueError):
    tool: str
    path: str

class ConversionError(AgentRuntimeError, TypeError):
    path: str

class ToolError(AgentRuntimeError):
    tool: Optional[str]
    type_name: Optional[str]
    traceback: Optional[str]

class ToolTimeout(AgentRuntimeError, TimeoutError):
    tool: str
    timeout: float

class Cancelled(AgentRuntimeError):
    tool: str

class RegistrationError(AgentRuntimeError, ValueError): ...
class NotAllowed(AgentRuntimeError, PermissionError): ...
class NotSupported(AgentRuntimeError): ...

class WorkerCrashed(AgentRuntimeError):
    tool: str
    detail: str
    exit_code: Optional[int]
    signal: Optional[int]
    stderr_tail: str

@final
class Ready:
    """An awaitable whose result is already known."""

    def __await__(self) -> Ready: ...
    def __iter__(self) -> Ready: ...
    def __next__(self) -> Any: ...
    def send(self, _value: Any) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any: ...
    def close(self) -> None: ...

@final
class Context:
    """What a tool sees of its own call (declare a parameter annotated ``Context``)."""

    @property
    def call_id(self) -> int: ...
    @property
    def tool(self) -> str: ...
    @property
    def cancelled(self) -> bool: ...
    def check_cancelled(self) -> None: ...
    def progress(self, done: float, total: Optional[float] = None, message: Optional[str] = None) -> None: ...
    def log(self, message: str, level: str = "info", *, logger: Optional[str] = None) -> None: ...
    def sample(
        self,
        messages: Union[str, Message, Sequence[Union[str, Message]]],
        *,
        max_tokens: int,
        system_prompt: Optional[str] = None,
        temperature: Optional[float] = None,
    ) -> Awaitable[SamplingResult]: ...
    def sample_sync(
        self,
        messages: Union[str, Message, Sequence[Union[str, Message]]],
        *,
        max_tokens: int,
        system_prompt: Optional[str] = None,
        temperature: Optional[float] = None,
    ) -> SamplingResult: ...
    def elicit(self, message: str, schema: Union[Mapping[str, Any], type]) -> Awaitable[Dict[str, Any]]: ...
    def elicit_sync(self, message: str, schema: Union[Mapping[str, Any], type]) -> Dict[str, Any]: ...

@final
class Task:
    """A tool call running in the background."""

    @property
    def id(self) -> int: ...
    @property
    def tool(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def progress(self) -> Optional[Dict[str, Any]]: ...
    def done(self) -> bool: ...
    def cancel(self) -> bool: ...
    def result(self, timeout: Optional[float] = None) -> Any: ...
    def __await__(self) -> Generator[Any, None, Any]: ...

_ProgressCallback: TypeAlias = Callable[[float, Optional[float], Optional[str]], Any]

@disjoint_base
class Registry:
    def __new__(cls, *, shared: bool = False) -> Self: ...
    def register(
        self,
        func: Callable[..., Any],
        name: str,
        *,
        description: str = ...,  # ""
        input_schema: Optional[Mapping[str, Any]] = None,
        output_schema: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
        is_async: bool = False,
        coercer: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None,
        context_param: Optional[str] = None,
        replace: bool = False,
        schema_as_given: bool = False,
    ) -> None: ...
    def register_isolated(
        self,
        module: str,
        qualname: str,
        name: str,
        *,
        description: str = ...,  # ""
        input_schema: Optional[Dict[str, Any]] = None,
        output_schema: Optional[Dict[str, Any]] = None,
        timeout: Optional[float] = None,
        is_async: bool = False,
        context_param: Optional[str] = None,
        replace: bool = False,
        schema_as_given: bool = False,
    ) -> None: ...
    def isolated_target(self, name: str) -> Optional[Tuple[str, str]]: ...
    def unregister(self, name: str) -> bool: ...
    def __contains__(self, key: str, /) -> bool: ...
    def __len__(self) -> int: ...
    def names(self) -> List[str]: ...
    def spec(self, name: str) -> Dict[str, Any]: ...
    def specs(self) -> List[Dict[str, Any]]: ...
    def function(self, name: str) -> Optional[Callable[..., Any]]: ...
    def call(
        self,
        name: str,
        args: Optional[Mapping[str, Any]] = None,
        *,
        timeout: Optional[float] = None,
        on_progress: Optional[_ProgressCallback] = None,
    ) -> Any: ...
    def call_async(
        self,
        name: str,
        args: Optional[Mapping[str, Any]] = None,
        *,
        timeout: Optional[float] = None,
        on_progress: Optional[_ProgressCallback] = None,
    ) -> Awaitable[Any]: ...
    def spawn(
        self,
        name: str,
        args: Optional[Mapping[str, Any]] = None,
        *,
        timeout: Optional[float] = None,
        on_progress: Optional[_ProgressCallback] = None,
    ) -> Task: ...

def tasks() -> List[Task]: ...
def cli_main(argv: List[str]) -> int: ...
def import_tools(module: str) -> None: ...
def allow_modules(*patterns: str) -> None: ...
def discover(group: str = ...) -> List[Dict[str, Any]]: ...  # group: "agent_runtime.tools"
def run_tool(tool_name: str, args_json: str = "{}") -> str: ...
def run_function(module: str, function: str, args_json: str = "[]") -> str: ...
def run_script(script: str, args: List[str] = ...) -> str: ...
def subscribe(kinds: List[str], listener: Callable[[Dict[str, Any]], Any]) -> int: ...
def unsubscribe(id: int) -> bool: ...
def register_diagnostic_tools(registry: Optional[Registry] = None) -> None: ...
def register_builtin_tools(groups: Optional[List[str]] = None, registry: Optional[Registry] = None) -> None: ...
def shutdown(timeout: float = 1.0) -> None: ...
def _configure_isolation(
    *,
    python: str,
    args: List[str],
    env: List[Tuple[str, str]] = ...,
    cwd: Optional[str] = None,
    size: Optional[int] = None,
    min_workers: int = 1,
    max_calls: Optional[int] = None,
    max_rss_mb: Optional[int] = None,
    recycle_rss_mb: Optional[int] = None,
    idle_timeout: Optional[float] = ...,  # 300.0
    max_async_per_worker: int = 64,
    start_timeout: float = 60.0,
    cancel_grace: float = 1.0,
) -> None: ...
def _isolation_configured() -> bool: ...
def isolation_stats() -> Dict[str, Any]: ...
def _atexit() -> None: ...
def _roundtrip(value: Any, schema: Optional[Mapping[str, Any]] = None) -> Any: ...
def _register_resource(
    registry_: Registry,
    func: Callable[..., Any],
    uri: str,
    name: str,
    *,
    description: str,
    mime_type: Optional[str],
    input_schema: Mapping[str, Any],
    is_async: bool,
    coercer: Optional[Callable[[Any], Any]] = None,
    context_param: Optional[str] = None,
    replace: bool = False,
) -> None: ...
def _register_prompt(
    registry_: Registry,
    func: Callable[..., Any],
    name: str,
    *,
    description: str,
    input_schema: Mapping[str, Any],
    is_async: bool,
    coercer: Optional[Callable[[Any], Any]] = None,
    context_param: Optional[str] = None,
    replace: bool = False,
) -> None: ...
def _set_completion(registry_: Registry, func: Optional[Callable[..., Any]], *, is_async: bool = False) -> None: ...
def _remove_resource(registry_: Registry, uri: str) -> bool: ...
def _remove_prompt(registry_: Registry, name: str) -> bool: ...
def _resources(registry_: Registry, *, templates: bool = False) -> List[Dict[str, Any]]: ...
def _prompts(registry_: Registry) -> List[Dict[str, Any]]: ...
def _notify_resource_updated(registry_: Registry, uri: str) -> None: ...
def _gil_on_tokio() -> int: ...
def _on_tokio_thread() -> bool: ...

# Optional: present only in builds with the `bench` cargo feature (`maturin develop --release
# --features bench`), for `python -m benches`. tests/stubtest_allowlist.txt lists them.
def _bare_noop() -> None: ...
def _bare_detach() -> None: ...
def _bench_rust_to_python(registry: Registry, name: str, n: int, args: Dict[str, Any]) -> List[float]: ...
def _bench_rust_await(registry: Registry, name: str, n: int, args: Dict[str, Any]) -> List[float]: ...
def _bench_future_into_py() -> Awaitable[None]: ...

@final
class McpMount:
    """A mounted MCP server."""

    @property
    def server(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def connected(self) -> bool: ...
    def tools(self) -> List[str]: ...
    def reconnect(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, t: object, v: object, tb: object) -> bool: ...

def mount_mcp(
    prefix: str,
    *,
    command: Optional[str] = None,
    args: List[str] = ...,
    env: Optional[List[Tuple[str, str]]] = None,
    cwd: Optional[str] = None,
    url: Optional[str] = None,
    headers: Optional[List[Tuple[str, str]]] = None,
    registry: Optional[Registry] = None,
) -> McpMount: ...
