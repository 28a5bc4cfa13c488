"""mini-swe-agent environments on agent-runtime's Rust shell (``pip install mini-swe-agent``).

``RustEnvironment`` keeps exactly the contract of mini-swe-agent's ``LocalEnvironment`` by
default: ``execute(action, cwd="", *, timeout=None)`` returns ``{"output", "returncode",
"exception_info"}``, each command runs in a fresh ``sh -c`` (mini-swe-agent's prompts tell the
model that ``cd`` does not persist) with stderr merged into stdout, a timeout kills the whole
process group and returns what was printed with ``returncode`` -1, and the submit sentinel
(``COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`` on the first line, exit code 0) raises
``Submitted``. What it adds: the output is capped (``max_output`` bytes; the middle is dropped
and a line says how much), and ``persistent=True`` runs every step in one bash session kept
across steps (``cd`` and variables persist).

``RemoteRustEnvironment(url=..., token=...)`` runs the same against ``agent-runtime serve
--swerex`` (or ``agent-runtime-swerex-remote``) in a sandbox, over SWE-ReX's HTTP protocol.

Use it from a mini-swe-agent config::

    environment:
      environment_class: agent_runtime.minisweagent.RustEnvironment
      timeout: 60
      persistent: false
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import urllib.error
import urllib.request
from typing import Any, Dict, Optional

from pydantic import BaseModel

try:
    from minisweagent.exceptions import Submitted
    from minisweagent.utils.serialize import recursive_merge
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "agent_runtime.minisweagent needs mini-swe-agent (Python 3.10+): pip install mini-swe-agent"
    ) from e

from . import Registry, register_builtin_tools

__all__ = ["RemoteRustEnvironment", "RustEnvironment", "RustEnvironmentConfig"]

SUBMIT_SENTINEL = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
_SESSION = "minisweagent"


class RustEnvironmentConfig(BaseModel):
    """``LocalEnvironmentConfig`` plus what the Rust environment adds."""

    cwd: str = ""
    env: Dict[str, str] = {}
    timeout: int = 30
    persistent: bool = False
    """One bash session kept across steps instead of a fresh shell per command."""
    max_output: int = 1_000_000
    """Bytes of output kept; past it the middle is dropped with a marker line."""


class RemoteRustEnvironmentConfig(RustEnvironmentConfig):
    url: str = "http://127.0.0.1:8880"
    token: str = ""
    request_timeout: float = 30.0
    """Extra seconds a request may take beyond the command's own timeout."""


def _timeout_result(command: str, timeout: float, output: str) -> Dict[str, Any]:
    """What LocalEnvironment returns when ``subprocess.TimeoutExpired`` is raised."""
    exc = f"Command '{command}' timed out after {timeout} seconds"
    return {
        "output": output,
        "returncode": -1,
        "exception_info": f"An error occurred while executing the command: {exc}",
        "extra": {"exception_type": "TimeoutExpired", "exception": exc},
    }


def _error_result(e: BaseException) -> Dict[str, Any]:
    return {
        "output": getattr(e, "output", None) or "",
        "returncode": -1,
        "exception_info": f"An error occurred while executing the command: {e}",
        "extra": {"exception_type": type(e).__name__, "exception": str(e)},
    }


def _check_finished(output: Dict[str, Any]) -> None:
    """Raise ``Submitted`` if the output says the task is complete (as LocalEnvironment)."""
    lines = output.get("output", "").lstrip().splitlines(keepends=True)
    if lines and lines[0].strip() == SUBMIT_SENTINEL and output["returncode"] == 0:
        submission = "".join(lines[1:])
        raise Submitted(
            {
                "role": "exit",
                "content": submission,
                "extra": {"exit_status": "Submitted", "submission": submission},
            }
        )


class _Base:
    config: RustEnvironmentConfig

    def execute(self, action: dict, cwd: str = "", *, timeout: Optional[int] = None) -> Dict[str, Any]:
        """Run ``action["command"]``; see the module docstring for the contract."""
        command = action.get("command", "")
        t = timeout or self.config.timeout
        try:
            if self.config.persistent:
                output = self._run_persistent(command, cwd, t)
            else:
                output = self._run_fresh(command, self._dir(cwd), t)
        except Exception as e:  # noqa: BLE001 - reported to the model, as LocalEnvironment does
            output = _error_result(e)
        _check_finished(output)
        return output

    def _dir(self, cwd: str) -> str:
        return cwd or self.config.cwd or os.getcwd()

    def _run_fresh(self, command: str, cwd: str, timeout: float) -> Dict[str, Any]:
        raise NotImplementedError

    def _run_persistent(self, command: str, cwd: str, timeout: float) -> Dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _in_dir(command: str, cwd: str) -> str:
        return f"cd {shlex.quote(cwd)} && {command}" if cwd else command

    def get_template_vars(self, **kwargs: Any) -> Dict[str, Any]:
        return recursive_merge(self.config.model_dump(), platform.uname()._asdict(), os.environ, kwargs)

    def serialize(self) -> dict:
        return {
            "info": {
                "config": {
                    "environment": self.config.model_dump(mode="json"),
                    "environment_type": f"{self.__class__.__module__}.{self.__class__.__name__}",
                }
            }
        }


class RustEnvironment(_Base):
    """mini-swe-agent's ``LocalEnvironment`` on agent-runtime's Rust shell tools."""

    def __init__(self, *, config_class: type = RustEnvironmentConfig, **kwargs: Any) -> None:
        self.config = config_class(**kwargs)
        self._reg = Registry()
        register_builtin_tools(["shell"], registry=self._reg)
        self._session_open = False

    def _run_fresh(self, command: str, cwd: str, timeout: float) -> Dict[str, Any]:
        r = self._reg.call(
            "shell.run",
            {
                "command": command,
                "shell": True,
                "cwd": cwd,
                "env": {**os.environ, **self.config.env},
                "timeout": timeout,
                "merge_output_streams": True,
                "max_output": self.config.max_output,
            },
        )
        if r["timed_out"]:
            return _timeout_result(command, timeout, r["stdout"])
        return {"output": r["stdout"], "returncode": r["exit_code"], "exception_info": ""}

    def _ensure_session(self) -> None:
        if self._session_open and _SESSION in self._reg.call("shell.session.list", {}):
            return
        if self._session_open:  # its shell exited (`exit`): start a new one
            self._reg.call("shell.session.close", {"session": _SESSION})
        self._reg.call(
            "shell.session.create",
            {"session": _SESSION, "cwd": self.config.cwd or os.getcwd(), "env": dict(self.config.env)},
        )
        self._session_open = True

    def _run_persistent(self, command: str, cwd: str, timeout: float) -> Dict[str, Any]:
        self._ensure_session()
        r = self._reg.call(
            "shell.session.run",
            {
                "session": _SESSION,
                "command": self._in_dir(command, cwd),
                "timeout": timeout,
                "check_syntax": False,
                "interrupt_on_timeout": True,
                "max_output": self.config.max_output,
            },
        )
        if r["status"] == "timeout":
            return _timeout_result(command, timeout, r["output"])
        code = r["exit_code"]
        return {"output": r["output"], "returncode": -1 if code is None else code, "exception_info": ""}

    def close(self) -> None:
        """Close the persistent session (killing what it started)."""
        if self._session_open:
            self._session_open = False
            with contextlib.suppress(Exception):  # already gone
                self._reg.call("shell.session.close", {"session": _SESSION})

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


class _RemoteError(RuntimeError):
    """A SWE-ReX exception (HTTP 511) raised by the server."""

    def __init__(self, class_path: str, message: str, extra_info: Dict[str, Any]) -> None:
        super().__init__(message)
        self.class_path = class_path
        self.extra_info = extra_info


class RemoteRustEnvironment(_Base):
    """``RustEnvironment`` against ``agent-runtime serve --swerex`` at ``url`` (SWE-ReX's protocol).

    ``env`` is exported in front of each command (on top of the server's environment).
    """

    def __init__(self, *, config_class: type = RemoteRustEnvironmentConfig, **kwargs: Any) -> None:
        self.config: RemoteRustEnvironmentConfig = config_class(**kwargs)
        self._session_open = False

    def _post(self, endpoint: str, body: Dict[str, Any], timeout: Optional[float]) -> Dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.config.token:
            headers["X-API-Key"] = self.config.token
        req = urllib.request.Request(
            f"{self.config.url.rstrip('/')}/{endpoint}",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        wait = None if timeout is None else timeout + self.config.request_timeout
        try:
            with urllib.request.urlopen(req, timeout=wait) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            data = json.loads(e.read() or b"{}")
            if e.code == 511:
                x = data["swerexception"]
                raise _RemoteError(x["class_path"], x["message"], x.get("extra_info", {})) from None
            raise RuntimeError(f"{endpoint}: HTTP {e.code}: {data.get('detail', data)}") from None

    def _with_env(self, command: str) -> str:
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in self.config.env.items())
        return exports + command

    def _run_fresh(self, command: str, cwd: str, timeout: float) -> Dict[str, Any]:
        body: Dict[str, Any] = {
            "command": self._with_env(command),
            "shell": True,
            "timeout": timeout,
            "merge_output_streams": True,
        }
        if cwd:
            body["cwd"] = cwd
        try:
            r = self._post("execute", body, timeout)
        except _RemoteError as e:
            if e.class_path.endswith("CommandTimeoutError"):
                return _timeout_result(command, timeout, e.extra_info.get("stdout", ""))
            raise
        return {"output": _cap(r["stdout"], self.config.max_output), "returncode": r["exit_code"], "exception_info": ""}

    def _dir(self, cwd: str) -> str:
        # The server's directory unless told otherwise (this machine's means nothing there).
        return cwd or self.config.cwd

    def _ensure_session(self) -> None:
        if self._session_open:
            return
        self._post("create_session", {"session": _SESSION, "startup_timeout": 10.0}, None)
        self._session_open = True
        setup = self._with_env(self._in_dir("true", self.config.cwd))
        self._post("run_in_session", {"session": _SESSION, "command": setup, "check": "silent"}, None)

    def _run_persistent(self, command: str, cwd: str, timeout: float) -> Dict[str, Any]:
        self._ensure_session()
        try:
            r = self._post(
                "run_in_session",
                {"session": _SESSION, "command": self._in_dir(command, cwd), "timeout": timeout, "check": "silent"},
                timeout,
            )
        except _RemoteError as e:
            if e.class_path.endswith("SessionDoesNotExistError"):
                self._session_open = False  # its shell exited: a new one next time
                raise
            if e.class_path.endswith("CommandTimeoutError"):
                self._post("run_in_session", {"session": _SESSION, "action_type": "bash_interrupt"}, None)
                return _timeout_result(command, timeout, e.extra_info.get("output", ""))
            raise
        if r.get("failure_reason") == "exited":
            self._session_open = False
        code = r["exit_code"]
        return {
            "output": _cap(r["output"], self.config.max_output),
            "returncode": -1 if code is None else code,
            "exception_info": "",
        }

    def close(self) -> None:
        """Close the persistent session on the server."""
        if self._session_open:
            self._session_open = False
            with contextlib.suppress(Exception):  # already gone
                self._post("close_session", {"session": _SESSION}, None)


def _cap(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` bytes, with a marker line between."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    half = max(limit // 2, 1)
    head = data[:half].decode("utf-8", "ignore")
    tail = data[-half:].decode("utf-8", "ignore")
    return f"{head}\n[... {len(data) - 2 * half} bytes of output omitted ...]\n{tail}"
