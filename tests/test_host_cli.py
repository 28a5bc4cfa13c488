"""The design note's operations, the module allowlist, plugin discovery and the CLI."""

import json
import os
import subprocess
import sys
import textwrap
import venv

import agent_runtime
import pytest
from agent_runtime import InvalidArguments, NotAllowed, ToolNotFound

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(agent_runtime.__file__)))


def cli(*args, python=sys.executable, env_extra=None, cwd=HERE):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PKG_PARENT, HERE])
    env.update(env_extra or {})
    return subprocess.run(
        [python, "-m", "agent_runtime", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60, check=False
    )


# ---------------------------------------------------------------- Python API


def test_run_tool_json_in_json_out():
    import sample_tools  # noqa: F401

    assert json.loads(agent_runtime.run_tool("add", '{"a": 2, "b": 3}')) == 5
    assert json.loads(agent_runtime.run_tool("diag.noop")) is None
    with pytest.raises(InvalidArguments, match="not valid JSON"):
        agent_runtime.run_tool("add", "{nope")
    with pytest.raises(ToolNotFound):
        agent_runtime.run_tool("no.such.tool", "{}")
    with pytest.raises(ValueError):  # the tool's own exception
        agent_runtime.run_tool("fail", '{"message": "x"}')


def test_run_function_and_script_respect_the_allowlist():
    with pytest.raises(NotAllowed, match="script_mod"):
        agent_runtime.run_function("script_mod", "add", "[1, 2]")
    with pytest.raises(NotAllowed):
        agent_runtime.run_script("script_mod", ["a"])
    with pytest.raises(NotAllowed, match="not a module name"):
        agent_runtime.run_function("../etc", "x")
    agent_runtime.import_tools("script_mod")  # explicit import → allowed
    assert agent_runtime.run_function("script_mod", "add", "[1, 2]") == "3"
    assert json.loads(agent_runtime.run_function("script_mod", "kw", '{"x": 5}')) == {"x": 5, "y": 1}
    assert agent_runtime.run_function("script_mod", "aadd", "[2, 3]") == "5"  # coroutine awaited
    assert agent_runtime.run_script("script_mod", ["a", "b"]) == "main:a|b"
    with pytest.raises(RuntimeError, match="script failed"):
        agent_runtime.run_function("script_mod", "boom")
    with pytest.raises(agent_runtime.ConversionError, match="result"):
        agent_runtime.run_function("script_mod", "not_json")
    with pytest.raises(InvalidArguments, match="JSON array"):
        agent_runtime.run_function("script_mod", "add", '"1, 2"')
    with pytest.raises(AttributeError):
        agent_runtime.run_function("script_mod", "missing")


def test_allow_patterns():
    with pytest.raises(NotAllowed):
        agent_runtime.run_function("json", "dumps", "[[1]]")
    agent_runtime.allow_modules("json.*")
    assert json.loads(agent_runtime.run_function("json", "dumps", "[[1]]")) == "[1]"
    with pytest.raises(NotAllowed):
        agent_runtime.run_function("jsonx", "dumps", "[1]")


# ---------------------------------------------------------------- CLI


def test_console_script_is_installed():
    bindir = os.path.dirname(sys.executable)
    assert os.path.exists(os.path.join(bindir, "agent-runtime")), "pip install should create the agent-runtime script"


def test_cli_help_and_usage_errors():
    p = cli("--help")
    assert p.returncode == 0 and "run-function" in p.stdout
    p = cli("call", "--help")
    assert p.returncode == 0 and "--timeout" in p.stdout
    p = cli("frobnicate")
    assert p.returncode == 2 and "unrecognized subcommand" in p.stderr


def test_cli_list_and_call():
    p = cli("--import", "sample_tools", "list")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].split() == ["NAME", "DESCRIPTION"]
    assert any(line.startswith("add ") and "Add two integers." in line for line in p.stdout.splitlines())
    p = cli("--import", "sample_tools", "list", "--json")
    specs = json.loads(p.stdout)
    assert {s["name"] for s in specs} >= {"add", "diag.add", "sample.greet"}
    p = cli("--import", "sample_tools", "call", "add", '{"a": 40, "b": 2}')
    assert p.returncode == 0 and json.loads(p.stdout) == 42
    p = cli("--import", "sample_tools", "call", "async_add", '{"a": 1, "b": 2}')
    assert p.returncode == 0 and json.loads(p.stdout) == 3
    p = cli("--import", "sample_tools", "call", "diag.noop")
    assert p.returncode == 0 and p.stdout.strip() == "null"


def test_cli_errors_and_exit_codes():
    p = cli("--import", "sample_tools", "call", "add", "{bad json")
    assert p.returncode == 2 and "not valid JSON" in p.stderr and p.stdout == ""
    p = cli("--import", "sample_tools", "call", "add", '{"a": "x"}')
    assert p.returncode == 2 and "at a" in p.stderr
    p = cli("--import", "sample_tools", "call", "ad")
    assert p.returncode == 3 and "did you mean 'add'" in p.stderr
    p = cli("--import", "sample_tools", "call", "fail", '{"message": "kaput"}')
    assert p.returncode == 1 and "ValueError: kaput" in p.stderr and "Traceback" not in p.stderr
    p = cli("-v", "--import", "sample_tools", "call", "fail", '{"message": "kaput"}')
    assert p.returncode == 1 and "Traceback" in p.stderr and "raise ValueError(message)" in p.stderr
    p = cli("--import", "sample_tools", "call", "diag.sleep", '{"seconds": 5}', "--timeout", "0.05")
    assert p.returncode == 1 and "timed out" in p.stderr
    p = cli("--import", "no_such_module_xyz", "list")
    assert p.returncode == 1 and "No module named 'no_such_module_xyz'" in p.stderr


def test_cli_run_function_and_script():
    p = cli("run-function", "script_mod", "add", "[1, 2]")
    assert p.returncode == 4 and "allowlist" in p.stderr
    p = cli("--import", "script_mod", "run-function", "script_mod", "add", "[1, 2]")
    assert p.returncode == 0 and p.stdout.strip() == "3"
    p = cli("--allow-module", "script_*", "run-function", "script_mod", "add", "[1, 2]")
    assert p.returncode == 4  # patterns are module paths, not globs
    p = cli("--allow-module", "script_mod", "run-script", "script_mod", "x", "--y")
    assert p.returncode == 0 and p.stdout.strip() == "main:x|--y"
    p = cli("--allow-module", "*", "run-function", "script_mod", "boom")
    assert p.returncode == 1 and "RuntimeError: script failed" in p.stderr
    p = cli("--import", "script_mod", "run-function", "script_mod", "add", "nope")
    assert p.returncode == 2 and "not valid JSON" in p.stderr


def test_cli_path_option(tmp_path):
    (tmp_path / "pathtools.py").write_text(
        textwrap.dedent(
            """
            import agent_runtime

            @agent_runtime.tool
            def shout(text: str) -> str:
                return text.upper()
            """
        )
    )
    p = cli("--path", str(tmp_path), "--import", "pathtools", "call", "shout", '{"text": "hi"}')
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == "HI"


# ---------------------------------------------------------------- plugin discovery


def _install_plugin(site, dist, module, source, entry_points):
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[agent_runtime.tools]\n" + entry_points + "\n")
    (info / "RECORD").write_text("")


def test_discover_plugins_from_entry_points(tmp_path):
    # A fresh virtualenv with two installed plugin distributions: one good, one broken.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = str(env_dir / "bin" / "python")
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    from pathlib import Path

    site_dir = Path(site)
    _install_plugin(
        site_dir,
        "tiny-tools",
        "tiny_tools",
        """
        import agent_runtime

        @agent_runtime.tool(name="tiny.hello")
        def hello(name: str = "world") -> str:
            return "hello " + name

        def register():
            @agent_runtime.tool(name="tiny.registered")
            def registered() -> int:
                return 7
        """,
        "tiny = tiny_tools\ntiny-reg = tiny_tools:register",
    )
    _install_plugin(site_dir, "broken-tools", "broken_tools", "raise ImportError('plugin is broken')\n", "broken = broken_tools")

    p = cli("list", python=py)
    assert p.returncode == 0 and "tiny.hello" not in p.stdout  # only on request
    p = cli("--discover", "list", "--json", python=py)
    assert p.returncode == 0, p.stderr
    names = {s["name"] for s in json.loads(p.stdout)}
    assert {"tiny.hello", "tiny.registered"} <= names
    assert "plugin broken (broken_tools) failed to load" in p.stderr and "plugin is broken" in p.stderr
    p = cli("--discover", "call", "tiny.hello", '{"name": "plugins"}', python=py)
    assert p.returncode == 0 and json.loads(p.stdout) == "hello plugins"
    # Discovered modules are allowed for run-function.
    p = cli("--discover", "run-function", "tiny_tools", "hello", '["fn"]', python=py)
    assert p.returncode == 0 and json.loads(p.stdout) == "hello fn"

    code = "import agent_runtime, json; print(json.dumps(agent_runtime.discover()))"
    env = dict(os.environ, PYTHONPATH=PKG_PARENT)
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    reports = {r["name"]: r for r in json.loads(out)}
    assert reports["tiny"]["error"] is None and reports["tiny"]["dist"] == "tiny-tools"
    assert "plugin is broken" in reports["broken"]["error"]


def test_cli_shows_progress_on_a_terminal():
    import pty
    import select

    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PKG_PARENT, os.path.join(ROOT, "examples")]))
    p = subprocess.Popen(
        [sys.executable, "-m", "agent_runtime", "--import", "tools", "call", "slow_count", '{"n": 3, "delay": 0.05}'],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
        cwd=HERE,
    )
    os.close(slave)
    out, _ = p.communicate(timeout=60)
    seen = b""
    while True:
        r, _, _ = select.select([master], [], [], 0.5)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert p.returncode == 0 and out.strip() == b"3"
    assert b"[1/3] counted 1" in seen and b"[3/3] counted 3" in seen
    # Not on a pipe: stderr stays clean for scripts.
    p = cli("--path", os.path.join(ROOT, "examples"), "--import", "tools", "call", "slow_count", '{"n": 2, "delay": 0.01}')
    assert p.returncode == 0 and p.stderr == ""


def test_cli_builtin_groups(tmp_path):
    p = cli("list", "--json")
    assert p.returncode == 0 and "fs.read" not in p.stdout  # opt-in only
    p = cli("--builtin", "fs,search", "list", "--json")
    assert p.returncode == 0, p.stderr
    names = {t["name"] for t in json.loads(p.stdout)}
    assert {"fs.read", "fs.write", "search.dir"} <= names and "shell.run" not in names
    (tmp_path / "a.txt").write_text("hello\n")
    p = cli("--builtin", "all", "call", "fs.read", json.dumps({"path": str(tmp_path / "a.txt")}))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["content"] == "hello\n"
    p = cli("--builtin", "fs,nope", "list")
    assert p.returncode == 2 and "unknown built-in tool group 'nope'" in p.stderr
