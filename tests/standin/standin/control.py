"""The control endpoints under /_standin/, the call counter and fault injection.

Not AWS: what the tests use to drive the stand-in. Every AWS request is counted under
`<service>:<Operation>` (service = the SigV4 scope name) and, when a test asked for it,
failed on purpose with an error in the protocol the client speaks (moto never throttles;
AWS does). app.py hands each AWS request to CALLS.record before moto sees it and every
/_standin/ request to handle().

STAND-IN for AWS's throttling: moto never throttles. `/_standin/faults` fails chosen calls
(a number of them, or every one for a time window: an outage); `/_standin/throttle` plays
the account-wide token bucket AWS answers from (a burst, then a sustained rate), so N
clients share one budget as they do on AWS. Faults are checked first (a faulted call takes
no token), then the buckets.

CONTROL API (JSON in, JSON out; a bad request answers 400 {"error": "..."}):
  GET    /_standin/health                  {"ok": true}
  POST   /_standin/reset                   moto's reset + all stand-in state
  GET    /_standin/calls                   {"ecs:DescribeTasks": 3, ...}  (service = SigV4 scope name)
  DELETE /_standin/calls
  POST   /_standin/faults                  {"target": "ecs:DescribeTasks" (fnmatch pattern ok),
                                            "error": "ThrottlingException", "count": 2,
                                            "status": 400, "message": "Rate exceeded",
                                            "for_ms": 45000}
                                           count: fail the next N matching calls (default 1);
                                           for_ms: fail every matching call for that long from
                                           now (no count: unlimited within the window; with
                                           both, the fault ends when either runs out). message
                                           defaults to "Rate exceeded" (status < 500) or
                                           "Service Unavailable" (5xx). -> the fault
  GET    /_standin/faults                  what is left (a windowed fault with "remaining_ms");
                                           DELETE /_standin/faults  clears
  POST   /_standin/throttle                {"target": "ecs:*" (fnmatch pattern), "rate_per_s": 4,
                                            "burst": 10, "error"?: "ThrottlingException"}
                                           an account-wide token bucket (AWS throttles per account
                                           and Region): every matching call takes a token; the
                                           bucket holds up to `burst` and refills at `rate_per_s`;
                                           a call finding it empty is answered as AWS answers
                                           (400, "Rate exceeded"; code ThrottlingException for the
                                           JSON protocols, Throttling for the query ones,
                                           RequestLimitExceeded for EC2) and never reaches moto.
                                           Posting the same target again replaces its bucket
                                           (full, counts at 0); a call matching several buckets
                                           needs a token from each. -> the bucket
  GET    /_standin/throttle                [{"target","rate_per_s","burst","tokens","granted",
                                             "throttled","since","by_operation": {"ecs:ListTasks":
                                             {"granted","throttled"}}, "per_second": [{"t" (epoch
                                             s), "granted", "throttled"}]}]
  DELETE /_standin/throttle                {"target"?}: that bucket, or every bucket
  POST   /_standin/lifecycle/start         {"asg", "hook", "instance_id", "transition"?, "region"?}
                                           -> {"token", "message", "delivered_to"}
  POST   /_standin/lifecycle/expire        {"instance_id"} -> the action
  POST   /_standin/lifecycle/enforce       {"enabled": true}: Auto Scaling's timeouts by the clock
                                           (off by default); -> {"enabled"}; GET reports it
  POST   /_standin/lifecycle/test-notification {"asg", "hook"}: AWS's TEST_NOTIFICATION
  GET    /_standin/lifecycle/actions       [{"asg","hook","instance_id","token","transition",
                                             "state","result","started_at","completed_at",
                                             "complete_calls","heartbeat_calls","heartbeats","region",
                                             "heartbeat_timeout","global_timeout","expired_by"}]
                                           (with enforcement on, timeouts are applied first)
  POST   /_standin/ecs/step                {"cluster"?, "max_replacements"?}
                                           -> {"advanced", "replaced", "stalled"}
  POST   /_standin/ecs/auto                {"interval_ms": 500}  (0 stops)
  POST   /_standin/ecs/events              {"cluster", "timeout_ms"?, "delay_ms"?}: every task of the
                                           cluster reaching STOPPED on a container instance invokes
                                           the function with its `ECS Task State Change` event,
                                           delay_ms later (EventBridge's rule; "cluster": null stops)
  POST   /_standin/ecs/agent               {"cluster", "container_instance", "connected": false}: the
                                           agent disconnects (agentConnected false; the scheduler
                                           step moves nothing on that instance) or reconnects
  POST   /_standin/ecs/service-event       {"cluster", "service", "message"}: a scheduler event
                                           (DescribeServices' events, newest first) -> the event
  POST   /_standin/ssm/outcome             {"instance_id", "status", "response_code", "stdout", "stderr"?,
                                            "in_progress_polls"?}: what the next runs report
  POST   /_standin/ssm/unreachable         {"instance_id"}: SendCommand fails with InvalidInstanceId
  GET    /_standin/ssm/commands            [{"command_id","document_name","instance_ids","parameters",
                                             "cloudwatch_output_config","timeout_seconds","comment","sent_at"}]
  POST   /_standin/ecs/tasks               {"cluster", "container_instance", "task_definition",
                                            "count", "started_by"?, "group"?} -> {"task_arns": [...]}
  POST   /_standin/lambda/invoke           {"event", "timeout_ms"?, "async"?}
  GET    /_standin/lambda/invocations      DELETE clears the finished ones
  POST   /_standin/lambda/subscribe        {"topic_arn", "timeout_ms"?, "wait_delay_ms"?}; DELETE {"topic_arn"?} undoes
  GET    /_standin/lambda/init-errors
  POST   /_standin/refresh/step            {"group", "launch_state"?: "InService" | "Pending:Wait",
                                            "terminate_state"?: "Terminated" | "Terminating:Wait"}
                                           -> {"status", "launched": [ids], "terminated": [ids],
                                               "waiting": [ids], "percentage", "instance_refresh_id"}
  POST   /_standin/refresh/fail            {"group", "reason"} -> the refresh (DescribeInstanceRefreshes
                                            shape plus "BatchInFlight")
  POST   /_standin/refresh/capacity        {"group", "failures", "code"?}: EC2 refuses the group's next
                                            launches for capacity (InsufficientInstanceCapacity,
                                            SpotCapacity, VcpuLimitExceeded, InstanceLimitExceeded)
  POST   /_standin/refresh/age             {"group", "days"}: the group's ended refreshes move back in
                                            time (ended over 42 days ago: no longer described)
  POST   /_standin/refresh/finish-on       {"group", "calls": ["autoscaling:Op", ...], "nth"?}: the
                                            refresh is played to its end when the nth matching call
                                            arrives, before moto answers it
  POST   /_standin/activity                {"group", "status_code", "description", "status_message"?,
                                            "cause"?} -> the activity (DescribeScalingActivities shape)
  POST   /_standin/ec2/image               {"image_id", "state"?, "owner_id"?, "owner_alias"?,
                                            "architecture"?}: what DescribeImages reports of the image
"""

from __future__ import annotations

import collections
import fnmatch
import json
import re
import threading
import time
import urllib.parse
import uuid
from typing import Any

from .activities import ACTIVITIES
from .autoscaling import LIFECYCLE
from .awslambda import LAMBDA
from .common import DEFAULT_REGION, MOTO_LOCK, StandInError, json_response, read_body
from .ec2 import set_image
from .ecs import (
    AUTO_STEPPER,
    ROUND_ROBIN,
    ecs_agent_endpoint,
    ecs_auto_endpoint,
    ecs_events_endpoint,
    ecs_seed_tasks,
    ecs_step_endpoint,
    service_event_endpoint,
)
from .refresh import REFRESHES
from .ssm import SSM

# ---- call counting and fault injection ----

# XML namespaces of query-protocol services, for injected error responses.
QUERY_XMLNS = {
    "autoscaling": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "cloudformation": "http://cloudformation.amazonaws.com/doc/2010-05-15/",
    "elasticloadbalancing": "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
    "monitoring": "http://monitoring.amazonaws.com/doc/2010-08-01/",
    "sqs": "http://queue.amazonaws.com/doc/2012-11-05/",
}


# The error code AWS throttles with, by protocol (JSON services: ThrottlingException).
THROTTLE_CODES = {"autoscaling": "Throttling", "sns": "Throttling", "sts": "Throttling",
                  "iam": "Throttling", "cloudformation": "Throttling", "ec2": "RequestLimitExceeded"}


class Bucket:
    """STAND-IN: one token bucket of AWS's throttling (see the module docstring)."""

    def __init__(self, target: str, rate_per_s: float, burst: int, error: str | None) -> None:
        self.target = target
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.error = error
        self.tokens = float(burst)
        self.last = time.time()
        self.since = self.last
        self.granted = 0
        self.throttled = 0
        self.by_operation: dict[str, dict[str, int]] = collections.OrderedDict()
        self.per_second: dict[int, list[int]] = collections.OrderedDict()

    def matches(self, key: str) -> bool:
        return self.target == key or fnmatch.fnmatchcase(key, self.target)

    def refill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate_per_s)
        self.last = now

    def count(self, key: str, now: float, granted: bool) -> None:
        op = self.by_operation.setdefault(key, {"granted": 0, "throttled": 0})
        second = self.per_second.setdefault(int(now), [0, 0])
        if granted:
            self.granted += 1
            op["granted"] += 1
            second[0] += 1
        else:
            self.throttled += 1
            op["throttled"] += 1
            second[1] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
            "error": self.error,
            "tokens": round(self.tokens, 3),
            "granted": self.granted,
            "throttled": self.throttled,
            "since": self.since,
            "by_operation": {k: dict(v) for k, v in self.by_operation.items()},
            "per_second": [{"t": t, "granted": g, "throttled": th} for t, (g, th) in self.per_second.items()],
        }


class Calls:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = collections.OrderedDict()
        self.faults: list[dict[str, Any]] = []
        self.buckets: list[Bucket] = []

    def _drop_ended(self, now: float) -> None:
        self.faults = [f for f in self.faults if f.get("until") is None or now < f["until"]]

    def record(self, key: str) -> dict[str, Any] | None:
        """Count the call; return the fault to inject (and use it up), if any: a fault a
        test asked for, else a throttle when a matching bucket is empty."""
        now = time.time()
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            self._drop_ended(now)
            for fault in self.faults:
                if fault["target"] == key or fnmatch.fnmatchcase(key, fault["target"]):
                    if fault["count"] is not None:
                        fault["count"] -= 1
                        if fault["count"] <= 0:
                            self.faults.remove(fault)
                    return dict(fault)
            matching = [b for b in self.buckets if b.matches(key)]
            for b in matching:
                b.refill(now)
            granted = all(b.tokens >= 1.0 for b in matching)
            for b in matching:
                if granted:
                    b.tokens -= 1.0
                b.count(key, now, granted)
            if not granted:
                empty = next(b for b in matching if b.tokens < 1.0)
                service = key.split(":", 1)[0]
                code = empty.error or THROTTLE_CODES.get(service, "ThrottlingException")
                return {"target": empty.target, "error": code, "status": 400, "message": "Rate exceeded",
                        "throttle": True}
        return None

    def add_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        target = body.get("target")
        error = body.get("error")
        if not isinstance(target, str) or ":" not in target:
            raise StandInError('"target" must be "<service>:<Operation>", e.g. "ecs:DescribeTasks"')
        if not isinstance(error, str) or not error:
            raise StandInError('"error" must be an error code, e.g. "ThrottlingException"')
        for_ms = body.get("for_ms")
        if for_ms is not None and (not isinstance(for_ms, int) or isinstance(for_ms, bool) or for_ms < 1):
            raise StandInError('"for_ms" must be an integer >= 1 (milliseconds)')
        count = body.get("count", 1 if for_ms is None else None)
        status = body.get("status", 400)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise StandInError('"count" must be an integer >= 1')
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise StandInError('"status" must be an HTTP error status (400..599)')
        message = body.get("message", "Rate exceeded" if status < 500 else "Service Unavailable")
        if not isinstance(message, str):
            raise StandInError('"message" must be a string')
        fault = {"target": target, "error": error, "count": count, "status": status, "message": message}
        if for_ms is not None:
            fault["for_ms"] = for_ms
            fault["until"] = time.time() + for_ms / 1000.0
        with self.lock:
            self.faults.append(fault)
        return self._public(fault, time.time())

    @staticmethod
    def _public(fault: dict[str, Any], now: float) -> dict[str, Any]:
        out = {k: v for k, v in fault.items() if k != "until"}
        if fault.get("until") is not None:
            out["remaining_ms"] = max(0, int((fault["until"] - now) * 1000))
        return out

    def list_faults(self) -> list[dict[str, Any]]:
        now = time.time()
        with self.lock:
            self._drop_ended(now)
            return [self._public(f, now) for f in self.faults]

    def add_bucket(self, body: dict[str, Any]) -> dict[str, Any]:
        target = body.get("target")
        rate = body.get("rate_per_s")
        burst = body.get("burst")
        error = body.get("error")
        if not isinstance(target, str) or ":" not in target:
            raise StandInError('"target" must be a "<service>:<Operation>" pattern, e.g. "ecs:*"')
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0:
            raise StandInError('"rate_per_s" must be a number > 0 (tokens added per second)')
        if burst is None:
            burst = max(1, int(rate))
        if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
            raise StandInError('"burst" must be an integer >= 1 (the bucket\'s size)')
        if error is not None and (not isinstance(error, str) or not error):
            raise StandInError('"error" must be an error code, e.g. "ThrottlingException"')
        bucket = Bucket(target, float(rate), burst, error)
        with self.lock:
            self.buckets = [b for b in self.buckets if b.target != target] + [bucket]
            return bucket.to_json()

    def list_buckets(self) -> list[dict[str, Any]]:
        now = time.time()
        with self.lock:
            for b in self.buckets:
                b.refill(now)
            return [b.to_json() for b in self.buckets]

    def clear_buckets(self, body: dict[str, Any]) -> dict[str, Any]:
        target = body.get("target")
        with self.lock:
            self.buckets = [b for b in self.buckets if target is not None and b.target != target]
        return {}


CALLS = Calls()

_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


def identify_request(environ: dict[str, Any], body: bytes) -> tuple[str, str, str]:
    """(service, operation, region) of an AWS request, from its SigV4 credential scope
    and X-Amz-Target header or query-protocol Action."""
    service, region = "unknown", DEFAULT_REGION
    m = _CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not m:  # presigned URL
        qs = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        cred = (qs.get("X-Amz-Credential") or [""])[0]
        m = re.match(r"([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request", cred)
    if m:
        region, service = m.group(3), m.group(4).lower()
    target = environ.get("HTTP_X_AMZ_TARGET")
    operation = None
    if target and "." in target:
        operation = target.rsplit(".", 1)[1]
    else:
        action = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("Action")
        if not action and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            operation = action[0]
    if operation is None:  # REST-style service: method + path is the best we have
        operation = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
    return service, operation, region


def fault_response(environ: dict[str, Any], service: str, fault: dict[str, Any]) -> tuple[int, list, bytes]:
    """An error in the protocol the client speaks, as the service would send it."""
    request_id = str(uuid.uuid4())
    status, code, message = fault["status"], fault["error"], fault["message"]
    content_type = environ.get("CONTENT_TYPE", "")
    if environ.get("HTTP_X_AMZ_TARGET") or content_type.startswith("application/x-amz-json"):
        version = "1.0" if (service == "sqs" or content_type.endswith("1.0")) else "1.1"
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [
            ("Content-Type", f"application/x-amz-json-{version}"),
            ("x-amzn-RequestId", request_id),
            ("X-Amzn-ErrorType", code),
        ]
        return status, headers, body
    if service == "ec2":  # the EC2 protocol has its own error envelope
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{xml_escape(code)}</Code>"
            f"<Message>{xml_escape(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        ).encode()
        return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
    xmlns = QUERY_XMLNS.get(service, f"http://{service}.amazonaws.com/doc/")
    kind = "Sender" if status < 500 else "Receiver"
    body = (
        f'<ErrorResponse xmlns="{xmlns}"><Error><Type>{kind}</Type>'
        f"<Code>{xml_escape(code)}</Code><Message>{xml_escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body


def xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def parse_json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        obj = json.loads(body)
    except ValueError as e:
        raise StandInError(f"request body is not JSON: {e}")
    if not isinstance(obj, dict):
        raise StandInError("request body must be a JSON object")
    return obj


# ---- the control endpoints ----


def _locked(fn):
    def run(body: dict[str, Any]) -> Any:
        with MOTO_LOCK:
            return fn(body)
    return run


def _reset_all(body: dict[str, Any]) -> dict[str, Any]:
    """moto's own reset plus the stand-in's state (not an AWS feature: test hygiene)."""
    from moto.moto_api._internal.models import moto_api_backend

    AUTO_STEPPER.set(0)
    with MOTO_LOCK:
        moto_api_backend.reset()
        LIFECYCLE.__init__()
        SSM.__init__()
        ACTIVITIES.__init__()
        REFRESHES.__init__()
        ROUND_ROBIN.clear()
    with CALLS.lock:
        CALLS.counts.clear()
        CALLS.faults.clear()
        CALLS.buckets.clear()
    LAMBDA.unsubscribe({})
    LAMBDA.clear()
    return {}


def _list_calls(body: dict[str, Any]) -> dict[str, int]:
    with CALLS.lock:
        return dict(CALLS.counts)


def _list_faults(body: dict[str, Any]) -> list[dict[str, Any]]:
    return CALLS.list_faults()


def _reset_calls(body: dict[str, Any]) -> dict[str, Any]:
    with CALLS.lock:
        CALLS.counts.clear()
    return {}


def _clear_faults(body: dict[str, Any]) -> dict[str, Any]:
    with CALLS.lock:
        CALLS.faults.clear()
    return {}


ROUTES = {
    ("GET", "/_standin/health"): lambda b: {"ok": True},
    ("POST", "/_standin/reset"): _reset_all,
    ("GET", "/_standin/calls"): _list_calls,
    ("DELETE", "/_standin/calls"): _reset_calls,
    ("GET", "/_standin/faults"): _list_faults,
    ("POST", "/_standin/faults"): CALLS.add_fault,
    ("DELETE", "/_standin/faults"): _clear_faults,
    ("GET", "/_standin/throttle"): lambda b: CALLS.list_buckets(),
    ("POST", "/_standin/throttle"): CALLS.add_bucket,
    ("DELETE", "/_standin/throttle"): CALLS.clear_buckets,
    ("POST", "/_standin/lifecycle/start"): _locked(LIFECYCLE.start),
    ("POST", "/_standin/lifecycle/expire"): _locked(LIFECYCLE.expire),
    ("POST", "/_standin/lifecycle/enforce"): _locked(LIFECYCLE.set_enforce),
    ("GET", "/_standin/lifecycle/enforce"): _locked(lambda b: {"enabled": LIFECYCLE.enforce}),
    ("POST", "/_standin/lifecycle/test-notification"): _locked(LIFECYCLE.test_notification),
    ("GET", "/_standin/lifecycle/actions"): _locked(lambda b: LIFECYCLE.list()),
    ("POST", "/_standin/ecs/step"): ecs_step_endpoint,
    ("POST", "/_standin/ecs/service-event"): service_event_endpoint,
    ("POST", "/_standin/ecs/auto"): ecs_auto_endpoint,
    ("POST", "/_standin/ecs/events"): ecs_events_endpoint,
    ("POST", "/_standin/ecs/agent"): ecs_agent_endpoint,
    ("POST", "/_standin/ecs/tasks"): ecs_seed_tasks,
    ("POST", "/_standin/lambda/invoke"): LAMBDA.invoke,
    ("GET", "/_standin/lambda/invocations"): lambda b: LAMBDA.list(),
    ("DELETE", "/_standin/lambda/invocations"): lambda b: (LAMBDA.clear(), {})[1],
    ("POST", "/_standin/lambda/subscribe"): LAMBDA.subscribe,
    ("DELETE", "/_standin/lambda/subscribe"): LAMBDA.unsubscribe,
    ("GET", "/_standin/lambda/init-errors"): lambda b: list(LAMBDA.init_errors),
    ("POST", "/_standin/ssm/outcome"): _locked(SSM.script),
    ("POST", "/_standin/ssm/unreachable"): _locked(SSM.set_unreachable),
    ("GET", "/_standin/ssm/commands"): _locked(SSM.list_sent),
    ("POST", "/_standin/refresh/step"): _locked(REFRESHES.step),
    ("POST", "/_standin/refresh/fail"): _locked(REFRESHES.fail),
    ("POST", "/_standin/refresh/capacity"): _locked(REFRESHES.set_capacity),
    ("POST", "/_standin/refresh/age"): _locked(REFRESHES.age),
    ("POST", "/_standin/refresh/finish-on"): _locked(REFRESHES.finish_on),
    ("POST", "/_standin/activity"): _locked(ACTIVITIES.post),
    ("POST", "/_standin/ec2/image"): set_image,
}


def handle(environ: dict[str, Any], start_response: Any, path: str) -> Any:
    """A request under /_standin/."""
    method = environ.get("REQUEST_METHOD", "GET")
    route = ROUTES.get((method, path.rstrip("/")))
    if route is None:
        if any(p == path.rstrip("/") for (_, p) in ROUTES):
            return json_response(start_response, 405, {"error": f"{method} not allowed on {path}"})
        return json_response(start_response, 404, {"error": f"no control endpoint {path}"})
    try:
        body = parse_json_body(read_body(environ)) if method in ("POST", "PUT", "DELETE") else {}
        return json_response(start_response, 200, route(body))
    except StandInError as e:
        return json_response(start_response, 400, {"error": str(e)})
