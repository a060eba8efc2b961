"""What every module of the stand-in shares; emulates nothing by itself.

The account and region moto serves, the one lock around moto, the control-endpoint
error, logging, AWS's timestamp formats, small helpers over moto's Auto Scaling models
(group members, request parameters, AWS's MaxRecords/NextToken paging, shared by
activities.py and refresh.py), and the WSGI helpers of the HTTP layer.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import sys
import threading
import time
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError

ACCOUNT_ID = os.environ["MOTO_ACCOUNT_ID"]
DEFAULT_REGION = "us-east-1"

# One re-entrant lock serialises every call into moto (AWS requests) with every mutation
# the stand-in makes to moto's backends or to its own lifecycle/ECS state. moto's backends
# are not thread-safe and the server is threaded. Lambda state has its own Condition
# (lambda waits must never hold this lock). Lock order: MOTO_LOCK before LAMBDA.cond.
MOTO_LOCK = threading.RLock()


def log(msg: str) -> None:
    sys.stderr.write(f"standin: {msg}\n")
    sys.stderr.flush()


def iso_ms(t: float | None = None) -> str:
    """AWS notification timestamp, e.g. 2026-11-22T05:01:02.345Z."""
    d = dt.datetime.fromtimestamp(time.time() if t is None else t, tz=dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def json_times(obj: Any) -> Any:
    """A control endpoint's answer with moto's naive UTC datetimes as ISO 8601 strings."""
    if isinstance(obj, dt.datetime):
        return obj.strftime("%Y-%m-%dT%H:%M:%S.") + f"{obj.microsecond // 1000:03d}Z"
    if isinstance(obj, dict):
        return {k: json_times(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_times(v) for v in obj]
    return obj


def loaded_backends(backend_dict: Any) -> list[tuple[str, str, Any]]:
    """(account, region, backend) for every backend moto has instantiated so far."""
    out = []
    for account_id, per_region in list(dict.items(backend_dict)):
        for region, backend in list(dict.items(per_region)):
            out.append((account_id, region, backend))
    return out


def group_member(group: Any, instance_id: str) -> Any | None:
    return next((s for s in group.instance_states if s.instance.id == instance_id), None)


def as_params(self: Any, *names: str) -> dict[str, Any]:
    """The named parameters of an Auto Scaling request (`self`: moto's response object)."""
    return {k: self._get_param(k) for k in names}


def page_records(items: list[Any], max_records: Any, token: str | None, default: int,
                 limit: int = 100) -> tuple[list[Any], str | None]:
    """Auto Scaling paging: MaxRecords (1..limit), an opaque NextToken."""
    size = default if max_records is None else int(max_records)
    if not 1 <= size <= limit:
        raise ValidationError(
            f"1 validation error detected: Value '{size}' at 'maxRecords' failed to satisfy constraint: "
            f"Member must have value less than or equal to {limit}"
        )
    start = 0
    if token:
        try:
            start = int(json.loads(base64.b64decode(token))["offset"])
        except Exception:
            raise AutoscalingClientError("InvalidNextToken", "The token is not valid.")
    page = items[start:start + size]
    nxt = None
    if start + size < len(items):
        nxt = base64.b64encode(json.dumps({"offset": start + size}).encode()).decode()
    return page, nxt


class StandInError(Exception):
    """A control-endpoint error: answered as 400 {"error": message}."""


# ---- WSGI helpers (control endpoints, Runtime API, the hand-off to moto) ----


def read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            return stream.read(int(length))
        except ValueError:
            return b""
    if environ.get("wsgi.input_terminated") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return stream.read()
    return b""


def json_response(start_response: Any, status: int, obj: Any, headers: list | None = None) -> list[bytes]:
    body = json.dumps(obj, default=str).encode()
    reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
              410: "Gone", 500: "Internal Server Error"}.get(status, "")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + (headers or []),
    )
    return [body]
