"""Lambda: a minimal Runtime API, invocations, and SNS -> Lambda subscriptions.

STAND-IN for what moto 5.2.5 lacks or misplays:
  * A minimal Runtime API (next / response / error / init error) so a real Rust binary
    built with `lambda_runtime` runs against this process (one function per process):
    AWS_LAMBDA_RUNTIME_API=<host>:<port>; GET /2018-06-01/runtime/invocation/next,
    POST .../invocation/<id>/response, POST .../invocation/<id>/error, POST .../init/error.
    Tests invoke it with `POST /_standin/lambda/invoke` (sync or async) and read
    `/_standin/lambda/invocations` and `/_standin/lambda/init-errors`.
  * SNS -> Lambda: moto's `lambda` subscriptions break Publish; `POST
    /_standin/lambda/subscribe` hooks SNS publishing in-process instead (moto's
    Topic.publish, patched here) and queues the envelope Lambda would receive.
  * The wait queue of WAIT_MODE=queue (an SQS queue subscribed to the topic, with
    DelaySeconds, read by an event source mapping): moto has SQS but no event source
    mapping. With `wait_delay_ms`, a subscription delivers the function's
    continuations marked `"wait": "queue"` that much later as the SQS event Lambda
    would receive (the SNS notification JSON in the record body), as the template's
    filter policies route them; everything else comes as SNS, at once.
"""

from __future__ import annotations

import collections
import json
import select
import socket
import threading
import time
import uuid
from typing import Any

from moto.sns import models as sns_models

from .common import ACCOUNT_ID, DEFAULT_REGION, StandInError, iso_ms, json_response, read_body

FUNCTION_ARN = f"arn:aws:lambda:{DEFAULT_REGION}:{ACCOUNT_ID}:function:local"


def _notification(topic_arn: str, message_id: str, message: str, subject: str | None,
                  attrs: dict[str, Any], url: str) -> dict[str, Any]:
    """An SNS notification document; `url` is how the carrier spells the URL keys
    (`Url` in Lambda's SNS event, `URL` in the body SNS delivers to SQS)."""
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic_arn,
        "Subject": subject,
        "Message": message,
        "Timestamp": iso_ms(),
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        f"SigningCert{url}": "https://example.com/cert.pem",
        f"Unsubscribe{url}": "https://example.com/unsub",
        "MessageAttributes": attrs,
    }


class LambdaStandIn:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: collections.deque[str] = collections.deque()
        self.invocations: dict[str, dict[str, Any]] = collections.OrderedDict()
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.init_errors: list[dict[str, Any]] = []

    @staticmethod
    def _public(inv: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in inv.items() if not k.startswith("_")}

    def _expire_locked(self) -> None:
        """STAND-IN: Lambda ends an invocation at its deadline; marked here, lazily."""
        now = time.time()
        for inv in self.invocations.values():
            if inv["status"] == "running" and now > inv["started_at"] + inv["timeout_ms"] / 1000.0 + 5:
                inv["status"] = "timeout"
                inv["finished_at"] = now
                self.cond.notify_all()

    def enqueue(self, event: Any, timeout_ms: int, source: str) -> dict[str, Any]:
        inv = {
            "request_id": str(uuid.uuid4()),
            "status": "queued",
            "event": event,
            "source": source,
            "timeout_ms": timeout_ms,
            "response": None,
            "error": None,
            "queued_at": time.time(),
            "started_at": None,
            "finished_at": None,
        }
        with self.cond:
            self.invocations[inv["request_id"]] = inv
            self.queue.append(inv["request_id"])
            self.cond.notify_all()
        return inv

    def invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        timeout_ms = body.get("timeout_ms", 30000)
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms < 1:
            raise StandInError('"timeout_ms" must be a positive integer')
        inv = self.enqueue(body.get("event", {}), timeout_ms, "invoke")
        if body.get("async"):
            return {"request_id": inv["request_id"]}
        grace = timeout_ms / 1000.0 + 5
        with self.cond:
            while inv["status"] in ("queued", "running"):
                start = inv["started_at"] if inv["status"] == "running" else inv["queued_at"]
                remaining = start + grace - time.time()
                if remaining <= 0:
                    if inv["status"] == "queued":
                        self.queue.remove(inv["request_id"])
                    inv["status"] = "timeout"
                    inv["finished_at"] = time.time()
                    break
                self.cond.wait(remaining)
            return self._public(inv)

    def list(self) -> list[dict[str, Any]]:
        with self.cond:
            self._expire_locked()
            return [self._public(i) for i in self.invocations.values()]

    def clear(self) -> None:
        with self.cond:
            for rid in list(self.invocations):
                if self.invocations[rid]["status"] not in ("queued", "running"):
                    del self.invocations[rid]

    def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        topic_arn = body.get("topic_arn")
        timeout_ms = body.get("timeout_ms", 30000)
        if not isinstance(topic_arn, str) or not topic_arn.startswith("arn:"):
            raise StandInError('"topic_arn" must be an SNS topic ARN')
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms < 1:
            raise StandInError('"timeout_ms" must be a positive integer')
        wait_delay_ms = body.get("wait_delay_ms")
        if wait_delay_ms is not None and (not isinstance(wait_delay_ms, int) or isinstance(wait_delay_ms, bool) or wait_delay_ms < 0):
            raise StandInError('"wait_delay_ms" must be a non-negative integer')
        sub = {"topic_arn": topic_arn, "timeout_ms": timeout_ms, "subscription_arn": f"{topic_arn}:{uuid.uuid4()}",
               "wait_delay_ms": wait_delay_ms}
        with self.cond:
            self.subscriptions[topic_arn] = sub
        return sub

    def unsubscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.cond:
            if body.get("topic_arn"):
                self.subscriptions.pop(body["topic_arn"], None)
            else:
                self.subscriptions.clear()
        return {}

    def on_sns_publish(self, topic_arn: str, message_id: str, message: str, subject: str | None,
                       message_attributes: dict[str, Any] | None, message_structure: str | None) -> None:
        with self.cond:
            sub = self.subscriptions.get(topic_arn)
        if sub is None:
            return
        if message_structure == "json":
            try:
                per_protocol = json.loads(message)
                message = per_protocol.get("lambda", per_protocol.get("default", message))
            except ValueError:
                pass
        attrs = {}
        for name, value in (message_attributes or {}).items():
            attrs[name] = {
                "Type": value.get("Type", value.get("DataType")),
                "Value": value.get("Value", value.get("StringValue", value.get("BinaryValue"))),
            }
        if sub.get("wait_delay_ms") is not None and self._waits_in_queue(message):
            self._deliver_from_wait_queue(sub, topic_arn, message_id, message, subject, attrs)
            return
        # STAND-IN: the event Lambda receives from an SNS subscription.
        event = {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": sub["subscription_arn"],
                    # Lambda's SNS event spells the URL keys "Url".
                    "Sns": _notification(topic_arn, message_id, message, subject, attrs, "Url"),
                }
            ]
        }
        self.enqueue(event, sub["timeout_ms"], "sns")

    @staticmethod
    def _waits_in_queue(message: str) -> bool:
        """A continuation that asks to wait in the queue (`"wait": "queue"`)."""
        try:
            doc = json.loads(message)
            return doc.get("kind") == "ecs-lifecycle.continuation" and doc.get("wait") == "queue"
        except (ValueError, AttributeError):
            return False

    def _deliver_from_wait_queue(self, sub: dict[str, Any], topic_arn: str, message_id: str, message: str,
                                 subject: str | None, attrs: dict[str, Any]) -> None:
        """STAND-IN: SNS -> SQS (no raw delivery: the notification JSON is the body),
        the queue's DelaySeconds, then the event source mapping's SQS event."""
        # The notification SNS writes into an SQS body spells them "URL".
        notification = _notification(topic_arn, message_id, message, subject, attrs, "URL")
        event = {
            "Records": [
                {
                    "messageId": str(uuid.uuid4()),
                    "receiptHandle": "standin-" + str(uuid.uuid4()),
                    "body": json.dumps(notification),
                    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": f"arn:aws:sqs:{DEFAULT_REGION}:{ACCOUNT_ID}:wait-queue",
                    "awsRegion": DEFAULT_REGION,
                }
            ]
        }
        timer = threading.Timer(sub["wait_delay_ms"] / 1000.0, self.enqueue, (event, sub["timeout_ms"], "sqs"))
        timer.daemon = True
        timer.start()

    # ---- Runtime API ----

    def next(self, client_alive: Any = lambda: True) -> dict[str, Any] | None:
        """Block until an invocation is queued and hand it out. A caller whose connection
        has gone (a killed function process) bows out instead of swallowing it."""
        with self.cond:
            while True:
                while not self.queue:
                    self.cond.wait(60)
                    if not client_alive():
                        return None
                if client_alive():
                    break
                return None
            inv = self.invocations[self.queue.popleft()]
            inv["status"] = "running"
            inv["started_at"] = time.time()
            self.cond.notify_all()
            return dict(inv)

    def finish(self, request_id: str, status: str, payload: Any) -> bool:
        with self.cond:
            inv = self.invocations.get(request_id)
            if inv is None:
                return False
            if inv["status"] == "running":
                inv["status"] = status
                inv["response" if status == "success" else "error"] = payload
                inv["finished_at"] = time.time()
            else:  # e.g. it already timed out: keep what happened, note the late answer
                inv["late_" + ("response" if status == "success" else "error")] = payload
            self.cond.notify_all()
            return True

    def init_error(self, payload: Any) -> None:
        with self.cond:
            self.init_errors.append({"error": payload, "at": time.time()})


LAMBDA = LambdaStandIn()

_orig_topic_publish = sns_models.Topic.publish


def _topic_publish(self: Any, message: str, subject: str | None = None, message_attributes: Any = None,
                   group_id: str | None = None, deduplication_id: str | None = None,
                   message_structure: str | None = None) -> str:
    message_id = _orig_topic_publish(
        self, message, subject=subject, message_attributes=message_attributes, group_id=group_id,
        deduplication_id=deduplication_id, message_structure=message_structure,
    )
    LAMBDA.on_sns_publish(self.arn, message_id, message, subject, message_attributes, message_structure)
    return message_id


sns_models.Topic.publish = _topic_publish


# ---- the Runtime API over HTTP ----


def peer_alive(sock: Any) -> bool:
    """False once the client has closed its end of the connection (readable with no data)."""
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return True
        return bool(sock.recv(1, socket.MSG_PEEK))
    except (OSError, ValueError):
        return False


def runtime_api(environ: dict[str, Any], start_response: Any, path: str) -> Any:
    method = environ.get("REQUEST_METHOD", "GET")
    parts = path[len("/2018-06-01/runtime/"):].strip("/").split("/")
    if method == "GET" and parts == ["invocation", "next"]:
        inv = LAMBDA.next(lambda: peer_alive(environ.get("werkzeug.socket")))
        if inv is None:  # the client went away while waiting
            return json_response(start_response, 410, {"errorMessage": "client gone", "errorType": "Gone"})
        body = json.dumps(inv["event"]).encode()
        deadline_ms = int(inv["started_at"] * 1000) + inv["timeout_ms"]
        trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
        start_response("200 OK", [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Lambda-Runtime-Aws-Request-Id", inv["request_id"]),
            ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN),
            ("Lambda-Runtime-Trace-Id", trace),
        ])
        return [body]
    if method == "POST" and len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
        raw = read_body(environ)
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        if parts[2] == "error":
            error_type = environ.get("HTTP_LAMBDA_RUNTIME_FUNCTION_ERROR_TYPE")
            if error_type and isinstance(payload, dict):
                payload.setdefault("errorType", error_type)
        ok = LAMBDA.finish(parts[1], "success" if parts[2] == "response" else "error", payload)
        if not ok:
            return json_response(start_response, 400, {
                "errorMessage": f"Invalid request ID: {parts[1]}", "errorType": "InvalidRequestID"})
        return json_response(start_response, 202, {"status": "OK"})
    if method == "POST" and parts == ["init", "error"]:
        raw = read_body(environ)
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        LAMBDA.init_error(payload)
        return json_response(start_response, 202, {"status": "OK"})
    return json_response(start_response, 404, {"errorMessage": f"unknown runtime API path {path}",
                                               "errorType": "NotFound"})
