"""SWE-agent's own `SWEEnv` with SWE-ReX's `RemoteDeployment` pointed at `agent-runtime serve
--swerex`: the environment SWE-agent builds from an `EnvironmentConfig`, unchanged, running
commands on our server through its public methods."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pytest

if sys.version_info < (3, 11):
    pytest.skip("SWE-agent needs Python 3.11+", allow_module_level=True)
pytest.importorskip(
    "sweagent",
    reason="SWE-agent is not installed (not on PyPI: .ci/setup installs it from GitHub or a local mirror)",
)

from servers import ServerProcess
from sweagent.environment.repo import LocalRepoConfig, PreExistingRepoConfig, RepoConfig
from sweagent.environment.swe_env import EnvironmentConfig, SWEEnv
from swerex.deployment.config import RemoteDeploymentConfig
from swerex.exceptions import CommandTimeoutError, DeploymentNotStartedError

TOKEN = "swe-env-token"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    s = ServerProcess(["serve", "--swerex", "127.0.0.1:0", "--token", TOKEN])
    yield s
    assert s.stop() == 0, "".join(s.lines)


def make_env(
    server: ServerProcess, repo: Optional[RepoConfig] = None, post_startup_commands: Sequence[str] = ()
) -> SWEEnv:
    """`SWEEnv.from_config`, the way SWE-agent's `run` builds it, with host and port split."""
    assert server.addr is not None
    u = urllib.parse.urlsplit(server.addr)
    deployment = RemoteDeploymentConfig(
        host=f"{u.scheme}://{u.hostname}", port=u.port, auth_token=TOKEN, timeout=30
    )
    config = EnvironmentConfig(
        deployment=deployment, repo=repo, post_startup_commands=list(post_startup_commands)
    )
    return SWEEnv.from_config(config)


def git_repo(path: Path) -> Path:
    path.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (path / "hello.py").write_text("print('hello')\n")
    subprocess.run([*git, "add", "hello.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    return path


def test_commands_files_env_and_timeouts(server: ServerProcess, tmp_path: Path) -> None:
    env = make_env(server, post_startup_commands=["export FROM_STARTUP=yes"])
    env.start()
    closed = False
    try:
        # start(): cd / (reset), SWEEnv's own exports, then the post-startup command, one shell.
        assert env.communicate("pwd") == "/\n"
        assert env.communicate("echo $LANG $PAGER $FROM_STARTUP") == "C.UTF-8 cat yes\n"
        # cd and variables persist between commands: one bash session.
        env.communicate(f"cd {tmp_path}", check="raise")
        env.set_env_variables({"GREETING": "hi there", "QUOTED": "a'b \"c\" $HOME"})
        assert env.communicate("pwd") == f"{tmp_path}\n"
        assert env.communicate('echo "$GREETING|$QUOTED"') == "hi there|a'b \"c\" $HOME\n"
        # Multi-line input, stderr in the output, trailing whitespace kept, no command echo.
        out = env.communicate("for i in 1 2 3; do\n  echo line$i\ndone\necho err >&2\nprintf 'x  \\n\\n'")
        assert out == "line1\nline2\nline3\nerr\nx  \n\n"
        # A non-zero exit: "warn" returns the output, "raise" raises (and SWEEnv closes itself after).
        assert env.communicate("echo partial; false", check="warn") == "partial\n"
        # Files: SWEEnv.write_file / read_file (UTF-8), absolute paths.
        target = tmp_path / "sub" / "notes.txt"
        (tmp_path / "sub").mkdir()
        env.write_file(target, "größe ✓\nline 2\n")
        assert target.read_text(encoding="utf-8") == "größe ✓\nline 2\n"
        assert env.communicate("cat sub/notes.txt") == "größe ✓\nline 2\n"
        assert env.read_file(str(target)) == "größe ✓\nline 2\n"
        # execute_command: a subprocess outside the session (its cwd and env, not the session's).
        env.execute_command(f"echo \"$SUB_VAR\" > {tmp_path}/exec.txt", env={"SUB_VAR": "from-exec"})
        assert env.read_file(tmp_path / "exec.txt") == "from-exec\n"
        # A command past its timeout raises; SWE-agent then interrupts the session and goes on.
        with pytest.raises(CommandTimeoutError, match="timeout after 0.5 seconds"):
            env.communicate("echo started; sleep 30", timeout=0.5)
        env.interrupt_session()
        assert env.communicate("echo after; pwd") == f"after\n{tmp_path}\n"
        # hard_reset: the deployment's runtime is closed and a fresh session starts at /.
        env.hard_reset()
        assert env.communicate("pwd; echo \"[$GREETING]\" $FROM_STARTUP") == "/\n[] yes\n"
        # check="raise": SWEEnv closes the deployment (our /close), then raises.
        with pytest.raises(RuntimeError, match=r"failed \(r.exit_code=3\): boom"):
            env.communicate("exit_3() { return 3; }; exit_3", check="raise", error_msg="boom")
        closed = True
        with pytest.raises(DeploymentNotStartedError):
            env.communicate("true")
    finally:
        if not closed:
            env.close()
    # close() ended the session on the server: a new environment starts from scratch.
    env2 = make_env(server)
    env2.start()
    try:
        assert env2.communicate("echo ${GREETING:-unset}") == "unset\n"
    finally:
        env2.close()


def test_preexisting_repo_is_reset_to_its_commit(server: ServerProcess, tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "hello.py").write_text("print('modified')\n")
    (repo / "untracked.txt").write_text("junk\n")
    # The repository "at the root of the deployment": /<repo_name>, here the absolute tmp path.
    env = make_env(server, repo=PreExistingRepoConfig(repo_name=str(repo).lstrip("/")))
    env.start()
    try:
        assert env.communicate("pwd") == f"{repo}\n"
        assert env.communicate("cat hello.py; ls") == "print('hello')\nhello.py\n"
        assert env.communicate("git status --porcelain") == ""
        assert env.communicate("echo $ROOT") == f"{repo}\n"
    finally:
        env.close()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="copies to /<name> and chowns: root")
def test_local_repo_is_uploaded_and_reset(server: ServerProcess, tmp_path: Path) -> None:
    name = f"swe-env-{uuid.uuid4().hex[:8]}"
    src = git_repo(tmp_path / name)
    env = make_env(server, repo=LocalRepoConfig(path=src))
    try:
        env.start()  # uploads the directory (zipped) to /<name>, chowns it, resets it
        try:
            assert env.communicate("pwd") == f"/{name}\n"
            assert env.communicate("cat hello.py; git log --format=%s") == "print('hello')\ninit\n"
            assert env.read_file(f"/{name}/hello.py") == "print('hello')\n"
        finally:
            env.close()
    finally:
        subprocess.run(["rm", "-rf", f"/{name}"], check=True)
