"""A SWE-ReX runtime backed by agent-runtime's Rust shell sessions.

``RustRuntime`` implements ``swerex.runtime.abstract.AbstractRuntime`` (``pip install swe-rex``,
Python 3.10+), so SWE-agent and anything else written against SWE-ReX can use it where it
would use ``LocalRuntime``. Each bash session is a persistent ``bash`` in a pseudo-terminal
driven by tokio: completion is detected with a per-command marker carrying ``$?`` (no PS1
matching, no bashlex), output is read without re-scanning, interrupts escalate from Ctrl-C to
SIGTERM/SIGKILL of the foreground job, and closing a session kills and reaps every process it
started.

Use it with SWE-agent by handing SWE-agent a deployment whose runtime is a ``RustRuntime``::

    from agent_runtime.swerex import RustDeployment
    from sweagent.environment.swe_env import SWEEnv

    env = SWEEnv(deployment=RustDeployment(), repo=..., post_startup_commands=[])

or directly::

    runtime = RustRuntime()
    await runtime.create_session(CreateBashSessionRequest())
    obs = await runtime.run_in_session(BashAction(command="echo hi", check="raise"))

Behaviour follows ``LocalRuntime`` where callers rely on it: the output has no command echo
and keeps trailing whitespace; ``bash -n`` rejects syntax errors before anything runs
(``BashIncorrectSyntaxError`` with ``bash_stdout``/``bash_stderr`` in ``extra_info``);
``check`` is ``"raise"`` (``NonZeroExitCodeError``), ``"silent"`` or ``"ignore"`` (exit code
``None``); a timeout raises ``CommandTimeoutError`` and leaves the command running until a
``BashInterruptAction`` (the partial output is in the exception's ``extra_info["output"]``).
Differences: bash starts without rc files (``--norc``; use ``startup_source``), commands are
not subject to history expansion, and the terminal does no output post-processing (a program's
``\n`` arrives as ``\n``; the text SWE-agent sees is the same).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

try:
    from swerex.deployment.abstract import AbstractDeployment
    from swerex.deployment.hooks.abstract import CombinedDeploymentHook, DeploymentHook
    from swerex.exceptions import (
        BashIncorrectSyntaxError,
        CommandTimeoutError,
        DeploymentNotStartedError,
        NonZeroExitCodeError,
        SessionDoesNotExistError,
        SessionExistsError,
    )
    from swerex.runtime.abstract import (
        AbstractRuntime,
        BashInterruptAction,
        BashObservation,
        CloseBashSessionResponse,
        CloseResponse,
        CommandResponse,
        CreateBashSessionResponse,
        IsAliveResponse,
        ReadFileResponse,
        UploadResponse,
        WriteFileResponse,
    )
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "agent_runtime.swerex needs the swe-rex package (Python 3.10+): pip install swe-rex"
    ) from e

from . import Registry, register_builtin_tools

__all__ = ["RustDeployment", "RustRuntime"]


def _raise_nonzero(request: Any, details: str, exit_code: Optional[int]) -> None:
    """LocalRuntime's ``NonZeroExitCodeError`` for a ``BashAction`` or ``Command``."""
    msg = f"Command {request.command!r} failed with exit code {exit_code}. {details}"
    if getattr(request, "error_msg", ""):
        msg = f"{request.error_msg}: {msg}"
    raise NonZeroExitCodeError(msg)


class RustRuntime(AbstractRuntime):
    """SWE-ReX runtime running bash sessions and commands through agent-runtime's Rust core.

    Args:
        logger: Logger to use (default: ``agent_runtime.swerex``).
        registry: Registry to register the ``shell.*`` tools into and call them through;
            default: a private one, so the sessions are not visible to other callers.
        interrupt_timeout: Seconds to wait after each Ctrl-C / signal of an interrupt.
    """

    def __init__(
        self,
        *,
        logger: Optional[logging.Logger] = None,
        registry: Optional[Registry] = None,
        interrupt_timeout: float = 0.5,
        **kwargs: Any,
    ) -> None:
        self.logger = logger or logging.getLogger("agent_runtime.swerex")
        self._reg = registry if registry is not None else Registry()
        register_builtin_tools(["shell"], registry=self._reg)
        self._sessions: Set[str] = set()
        self._interrupt_timeout = interrupt_timeout

    @property
    def sessions(self) -> List[str]:
        """Names of the open sessions."""
        return sorted(self._sessions)

    async def _call(self, name: str, args: Dict[str, Any]) -> Any:
        return await self._reg.call_async(name, args)

    async def is_alive(self, *, timeout: Optional[float] = None) -> IsAliveResponse:
        """The runtime lives in this process: always alive."""
        return IsAliveResponse(is_alive=True)

    async def create_session(self, request: Any) -> CreateBashSessionResponse:
        """Start a bash session (``CreateBashSessionRequest``)."""
        name = request.session
        if name in self._sessions and name in await self._call("shell.session.list", {}):
            raise SessionExistsError(f"session {name} already exists")
        # Not listed any more: its shell exited or was given up; the tool replaces it.
        self._sessions.add(name)
        try:
            r = await self._call(
                "shell.session.create",
                {
                    "session": name,
                    "startup_source": list(request.startup_source),
                    "startup_timeout": float(getattr(request, "startup_timeout", 10.0)),
                },
            )
        except BaseException:
            self._sessions.discard(name)
            raise
        return CreateBashSessionResponse(output=r["output"])

    async def _forget_if_dead(self, name: str) -> None:
        """After a failure: a session the tools gave up on (it stopped answering) is gone."""
        if name not in await self._call("shell.session.list", {}):
            self._sessions.discard(name)

    def _require(self, name: str) -> None:
        if name not in self._sessions:
            raise SessionDoesNotExistError(f"session {name!r} does not exist")

    async def run_in_session(self, action: Any) -> BashObservation:
        """Run a ``BashAction`` or ``BashInterruptAction`` in its session."""
        self._require(action.session)
        if isinstance(action, BashInterruptAction):
            try:
                r = await self._call(
                    "shell.session.interrupt",
                    {
                        "session": action.session,
                        "timeout": max(float(action.timeout), self._interrupt_timeout),
                        "retries": max(int(action.n_retry), 1),
                    },
                )
            except Exception:
                await self._forget_if_dead(action.session)
                raise
            return BashObservation(output=r["output"].strip(), exit_code=0)
        interactive = bool(action.is_interactive_command or action.is_interactive_quit)
        args: Dict[str, Any] = {
            "session": action.session,
            "command": action.command,
            "timeout": action.timeout,
            "expect": list(action.expect),
            "interactive": interactive,
            "check_syntax": not interactive,
            "interrupt_on_timeout": False,
        }
        try:
            r = await self._call("shell.session.run", args)
        except Exception:
            await self._forget_if_dead(action.session)
            raise
        status = r["status"]
        if status == "syntax_error":
            stdout, stderr = r.get("bash_stdout", ""), r.get("bash_stderr", "")
            msg = (
                f"Error (exit code 2) while checking bash command \n{action.command!r}\n"
                f"---- Stderr ----\n{stderr}\n---- Stdout ----\n{stdout}"
            )
            raise BashIncorrectSyntaxError(
                msg, extra_info={"bash_stdout": stdout, "bash_stderr": stderr}
            )
        if status == "timeout":
            err = CommandTimeoutError(
                f"timeout after {action.timeout} seconds while running command {action.command!r}"
            )
            err.extra_info = {"output": r["output"]}  # type: ignore[attr-defined]
            raise err
        output: str = r["output"]
        if status == "exited":  # the shell itself exited (`exit`): the session is gone
            self._sessions.discard(action.session)
            await self._call("shell.session.close", {"session": action.session})
        if interactive:
            if action.is_interactive_command:
                output = output.strip()
            return BashObservation(output=output, exit_code=0, expect_string=r["expect_string"])
        check = getattr(action, "check", "raise")
        exit_code = None if check == "ignore" else r["exit_code"]
        if check == "raise" and status in ("completed", "exited") and exit_code != 0:
            _raise_nonzero(action, f"Here is the output:\n{output!r}", exit_code)
        failure = "" if status in ("completed", "expect") else status
        return BashObservation(
            output=output,
            exit_code=exit_code,
            expect_string=r["expect_string"],
            failure_reason=failure,
        )

    async def close_session(self, request: Any) -> CloseBashSessionResponse:
        """Close a session, killing every process it started."""
        self._require(request.session)
        self._sessions.discard(request.session)
        await self._call("shell.session.close", {"session": request.session})
        return CloseBashSessionResponse()

    async def execute(self, command: Any) -> CommandResponse:
        """Run a ``Command`` as a subprocess (stdin closed), like ``subprocess.run``.

        With ``shell=True`` and a list, the first element is the script and the others are its
        ``$0``, ``$1``, ... (``subprocess`` semantics, as ``LocalRuntime``). On timeout every
        process the command started is killed; the ``CommandTimeoutError`` carries the output
        printed until then in ``extra_info`` (``stdout``, ``stderr``).
        """
        cmd = command.command
        r = await self._call(
            "shell.run",
            {
                "command": [cmd] if isinstance(cmd, str) else list(cmd),
                "shell": bool(command.shell),
                "timeout": command.timeout,
                "env": getattr(command, "env", None),
                "cwd": getattr(command, "cwd", None),
                "merge_output_streams": bool(getattr(command, "merge_output_streams", False)),
            },
        )
        if r["timed_out"]:
            err = CommandTimeoutError(f"Timeout ({command.timeout}s) exceeded while running command")
            err.extra_info = {"stdout": r["stdout"], "stderr": r["stderr"]}  # type: ignore[attr-defined]
            raise err
        resp = CommandResponse(stdout=r["stdout"], stderr=r["stderr"], exit_code=r["exit_code"])
        if getattr(command, "check", False) and r["exit_code"] != 0:
            _raise_nonzero(command, f"Stdout:\n{resp.stdout!r}\nStderr:\n{resp.stderr!r}", r["exit_code"])
        return resp

    async def read_file(self, request: Any) -> ReadFileResponse:
        """Read a text file (``encoding``/``errors`` as for ``Path.read_text``)."""
        path = Path(request.path)
        enc, errors = getattr(request, "encoding", None), getattr(request, "errors", None)
        content = await asyncio.to_thread(path.read_text, encoding=enc, errors=errors)
        return ReadFileResponse(content=content)

    async def write_file(self, request: Any) -> WriteFileResponse:
        """Write a text file, creating missing parent directories."""

        def write() -> None:
            path = Path(request.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(request.content)

        await asyncio.to_thread(write)
        return WriteFileResponse()

    async def upload(self, request: Any) -> UploadResponse:
        """Copy a file or a directory tree to ``target_path``."""

        def copy() -> None:
            src, dst = Path(request.source_path), Path(request.target_path)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dst)

        await asyncio.to_thread(copy)
        return UploadResponse()

    async def close(self) -> CloseResponse:
        """Close every session."""
        for name in list(self._sessions):
            self._sessions.discard(name)
            await self._call("shell.session.close", {"session": name})
        return CloseResponse()


class RustDeployment(AbstractDeployment):
    """A SWE-ReX deployment running on this machine with a :class:`RustRuntime`.

    The drop-in replacement for ``swerex.deployment.local.LocalDeployment``; pass it to
    SWE-agent's ``SWEEnv(deployment=...)``. Keyword arguments go to ``RustRuntime``.
    """

    def __init__(self, *, logger: Optional[logging.Logger] = None, **kwargs: Any) -> None:
        self.logger = logger or logging.getLogger("agent_runtime.swerex")
        self._runtime: Optional[RustRuntime] = None
        self._kwargs = kwargs
        self._hooks = CombinedDeploymentHook()

    def add_hook(self, hook: DeploymentHook) -> None:
        """Add a deployment hook (called like LocalDeployment does: never, nothing to report)."""
        self._hooks.add_hook(hook)

    async def is_alive(self, *, timeout: Optional[float] = None) -> IsAliveResponse:
        """Whether the runtime was started."""
        if self._runtime is None:
            return IsAliveResponse(is_alive=False, message="Runtime is None.")
        return await self._runtime.is_alive(timeout=timeout)

    async def start(self, *args: Any, **kwargs: Any) -> None:
        """Create the runtime."""
        self._runtime = RustRuntime(logger=self.logger, **self._kwargs)

    async def stop(self, *args: Any, **kwargs: Any) -> None:
        """Close the runtime and its sessions."""
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None

    @property
    def runtime(self) -> RustRuntime:
        """The runtime; raises ``DeploymentNotStartedError`` before ``start``."""
        if self._runtime is None:
            raise DeploymentNotStartedError()
        return self._runtime
