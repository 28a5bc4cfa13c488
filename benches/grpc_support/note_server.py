"""The design note's Python gRPC server (python-ffi-integration.md, "Python Service"), as the
baseline of the grpc benchmark area.

Usage: ``python note_server.py GEN_DIR [MAX_SECONDS]``. ``GEN_DIR`` holds ``python_service_pb2``
and ``python_service_pb2_grpc`` generated from ``proto/python_service.proto``. Listens on a free
loopback port and reports it on stderr (``... listening on 127.0.0.1:PORT``); SIGTERM (or SIGINT,
or ``MAX_SECONDS``, default 1800) stops it.

The servicer is the note's, with one substitution: the note looks tools up with
``sweagent.tools.tools.get_tool(name)`` and calls ``tool.run(**args)``; here the registry is a
dict of plain functions, called as ``tool(**args)``.
"""

import importlib
import importlib.util
import json
import signal
import sys
import time
import traceback
from concurrent import futures
from typing import Any, Callable, Dict

from echo_impl import echo

import grpc

TOOLS: Dict[str, Callable[..., Any]] = {"bench.echo": echo}


def make_servicer(pb2: Any, pb2_grpc: Any) -> Any:
    class PythonServiceServicer(pb2_grpc.PythonServiceServicer):  # type: ignore[misc]
        def RunScript(self, request: Any, context: Any) -> Any:
            try:
                # Execute the script with the provided arguments
                module = importlib.import_module(request.script)
                result = module.main(*request.args)
                return pb2.RunScriptResponse(result=str(result))
            except Exception as e:  # noqa: BLE001 - the note's servicer reports any failure
                traceback.print_exc()
                return pb2.RunScriptResponse(error=str(e))

        def RunFunction(self, request: Any, context: Any) -> Any:
            try:
                # Import the module and call the function
                module = importlib.import_module(request.module)
                function = getattr(module, request.function)
                args = json.loads(request.args_json)
                result = function(*args)
                result_json = json.dumps(result)
                return pb2.RunFunctionResponse(result_json=result_json)
            except Exception as e:  # noqa: BLE001 - the note's servicer reports any failure
                traceback.print_exc()
                return pb2.RunFunctionResponse(error=str(e))

        def RunTool(self, request: Any, context: Any) -> Any:
            try:
                # Parse arguments
                args = json.loads(request.args_json)
                # Get the tool
                tool = TOOLS.get(request.tool_name)
                if tool is None:
                    return pb2.RunToolResponse(error=f"Tool not found: {request.tool_name}")
                # Run the tool
                result = tool(**args)
                # Serialize result
                result_json = json.dumps(result)
                return pb2.RunToolResponse(result_json=result_json)
            except Exception as e:  # noqa: BLE001 - the note's servicer reports any failure
                traceback.print_exc()
                return pb2.RunToolResponse(error=str(e))

    return PythonServiceServicer()


def _load(gen_dir: str, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, f"{gen_dir}/{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {gen_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # python_service_pb2_grpc imports python_service_pb2 by name
    spec.loader.exec_module(module)
    return module


def serve(gen_dir: str, max_seconds: float) -> None:
    pb2 = _load(gen_dir, "python_service_pb2")
    pb2_grpc = _load(gen_dir, "python_service_pb2_grpc")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    pb2_grpc.add_PythonServiceServicer_to_server(make_servicer(pb2, pb2_grpc), server)
    port = server.add_insecure_port("127.0.0.1:0")
    if not port:
        raise SystemExit("note-server: cannot bind 127.0.0.1:0")
    stopped = []  # the signal handler only appends (no locks taken inside a handler)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.append(True))
    server.start()
    print(f"note-server: gRPC PythonService listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + max_seconds
    while not stopped and time.monotonic() < deadline:
        time.sleep(0.1)
    server.stop(1).wait(5)


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1800.0)
