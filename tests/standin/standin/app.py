"""AWS stand-in for the integration tests: moto server 5.2.5, patched, on loopback.

This module is the server: the WSGI app and main(), which tests/standin/standin.py runs.

Usage: python tests/standin/standin.py [--host 127.0.0.1] [--port 0] [--no-stdin-watch]

Prints exactly one line `STANDIN_READY http://<host>:<port>` on stdout once serving,
then never writes to stdout again (anything moto prints later goes to stderr). Exits
on SIGTERM / SIGINT and when stdin reaches EOF (so a test that spawned it with a piped
stdin takes it down when the test process dies); `--no-stdin-watch` turns that off.

The app is moto's server app (the same WSGI app `moto_server` / ThreadedMotoServer
serve) wrapped in a small WSGI middleware. Requests under `/_standin/` are control
endpoints for the tests (control.py), requests under `/2018-06-01/runtime/` are a minimal
AWS Lambda Runtime API (awslambda.py), everything else is an AWS request that goes to
moto after being counted and, when a test asked for it, failed on purpose (control.py).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
import traceback
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

# Importing a service module applies its patches to moto: all of them, here.
from . import activities, autoscaling, awslambda, control, ec2, ecs, iam, refresh, ssm  # noqa: F401
from .common import MOTO_LOCK, json_response, log, read_body
from .control import CALLS, fault_response, identify_request


class StandInApp:
    def __init__(self) -> None:
        self.moto_app = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        try:
            if path.startswith("/_standin/"):
                return control.handle(environ, start_response, path)
            if path.startswith("/2018-06-01/runtime/"):
                return awslambda.runtime_api(environ, start_response, path)
            return self.aws(environ, start_response)
        except Exception as e:  # a bug in the stand-in: say so loudly, in JSON
            log("internal error:\n" + traceback.format_exc())
            return json_response(start_response, 500, {"error": f"stand-in internal error: {e!r}"})

    def aws(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = read_body(environ)
        # Give moto a fresh, fully readable body.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/moto-api") and (
            environ.get("HTTP_AUTHORIZATION") or environ.get("HTTP_X_AMZ_TARGET") or "X-Amz-Credential" in
            environ.get("QUERY_STRING", "")
        ):
            service, operation, region = identify_request(environ, body)
            key = control._CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
            iam.record(environ, body, service, operation, region, key.group(1) if key else None)
            fault = CALLS.record(f"{service}:{operation}")
            with MOTO_LOCK:
                refresh.REFRESHES.on_call(f"{service}:{operation}")
            if fault is not None:
                status, headers, err_body = fault_response(environ, service, fault)
                headers.append(("Content-Length", str(len(err_body))))
                start_response(f"{status} Error", headers)
                return [err_body]
        with MOTO_LOCK:
            return list(self.moto_app(environ, start_response))


class QuietHandler(MotoRequestHandler):
    """No per-request log lines; errors still reach stderr."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error":
            super().log(type, message, *args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-stdin-watch", action="store_true",
                        help="do not exit when stdin reaches EOF")
    args = parser.parse_args()

    ecs.stop_self_advancing_tasks()

    server = make_server(args.host, args.port, StandInApp(), threaded=True, request_handler=QuietHandler)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if not args.no_stdin_watch:
        def watch_stdin() -> None:
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except Exception:
                pass
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()

    serve = threading.Thread(target=server.serve_forever, daemon=True)
    serve.start()
    out = sys.stdout
    out.write(f"STANDIN_READY http://{args.host}:{server.server_port}\n")
    out.flush()
    # Nothing else may go to stdout: a test that stops reading the pipe would block us.
    sys.stdout = sys.stderr

    while not stop.wait(3600):
        pass
    ecs.AUTO_STEPPER.set(0)
    server.shutdown()
    server.server_close()
    # Nothing is left to save: skip the interpreter's teardown of moto's many modules,
    # which takes seconds on a loaded machine (the self-check waits for the exit).
    sys.stderr.flush()
    os._exit(0)
