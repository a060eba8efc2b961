#!/usr/bin/env python3
"""AWS stand-in for the integration tests: moto server 5.2.5, patched, on loopback.

Usage: python tests/standin/standin.py [--host 127.0.0.1] [--port 0] [--no-stdin-watch]

Prints exactly one line `STANDIN_READY http://<host>:<port>` on stdout once serving,
then never writes to stdout again (anything moto prints later goes to stderr). Exits
on SIGTERM / SIGINT and when stdin reaches EOF (so a test that spawned it with a piped
stdin takes it down when the test process dies); `--no-stdin-watch` turns that off.

WHAT THIS IS. moto's server app (the same WSGI app `moto_server` / ThreadedMotoServer
serve) wrapped in a small WSGI middleware. Requests under `/_standin/` are control
endpoints for the tests, requests under `/2018-06-01/runtime/` are a minimal AWS Lambda
Runtime API, everything else is an AWS request that goes to moto after being counted
and, when a test asked for it, failed on purpose.

WHERE IT STANDS IN FOR AWS (each place is marked `STAND-IN:` below). moto 5.2.5 lacks or
misplays these, so a correct client could fail against raw moto and a wrong one pass:

  Auto Scaling
    * PutLifecycleHook keeps NotificationTargetARN, RoleARN, NotificationMetadata and
      reports GlobalTimeout = min(172800, 100 x HeartbeatTimeout) (moto drops/hardcodes them).
    * Lifecycle actions: moto has none. `POST /_standin/lifecycle/start` plays what AWS does
      when an instance enters a hook's wait state: token, `Terminating:Wait` /
      `Pending:Wait`, and the notification (same JSON as AWS) to the hook's SNS topic or
      SQS queue. CompleteLifecycleAction and RecordLifecycleActionHeartbeat (HTTP 500 in
      moto) are implemented with AWS's `ValidationError: No active Lifecycle Action found
      with ...`. Timeouts are not simulated by the clock: `POST /_standin/lifecycle/expire`
      ends an action as the heartbeat/global timeout would.
    * DescribeAutoScalingInstances / DescribeAutoScalingGroups report those states, and the
      launch template version each instance was launched from (moto reports the template's
      default version; the instance's aws:ec2launchtemplate:version tag likewise).
    * Instance refresh (HTTP 500 in moto): StartInstanceRefresh, DescribeInstanceRefreshes,
      CancelInstanceRefresh, RollbackInstanceRefresh with AWS's rules and errors
      (InstanceRefreshInProgress, ActiveInstanceRefreshNotFound, IrreversibleInstanceRefresh,
      ValidationError for AutoRollback without a desired configuration or with a group or
      desired configuration on $Latest / $Default). No clock drives it: each
      `POST /_standin/refresh/step` plays one batch (Pending -> InProgress; then launch the
      batch from the desired launch template version with moto's own group launch, then take
      as many old instances out). Batch size is AWS's: the room between MinHealthyPercentage
      and MaxHealthyPercentage of the desired capacity, at least one. SkipMatching skips
      instances on the same launch template *and version* (as AWS; not merely the same AMI);
      instances protected from scale in / in Standby are left alone unless
      ScaleInProtectedInstances=Refresh / StandbyInstances=Terminate. On success the group
      takes the desired configuration; BakeTime > 0 passes through Baking (one step). A
      rollback replaces what the refresh launched with the group's own configuration.
      A step may wait on the group's hooks (`launch_state` "Pending:Wait" /
      `terminate_state` "Terminating:Wait": the lifecycle action starts and notifies as in
      `/lifecycle/start`; the batch goes on once the test completes the actions; an ABANDONed
      launch is terminated and its old instance kept for a later batch). By default hooks
      are not waited on. `POST /_standin/refresh/fail` fails the refresh (AutoRollback ->
      RollbackInProgress). Not emulated: instance warmup, checkpoints, alarms, the
      ReplaceRootVolume strategy, MixedInstancesPolicy in a desired configuration, the
      "Wait" choices of ScaleInProtectedInstances / StandbyInstances (treated as Ignore),
      refusing UpdateAutoScalingGroup during a refresh.
    * DescribeScalingActivities (always empty in moto): what the stand-in recorded, newest
      first, paged by MaxRecords/NextToken: a launch ABANDONed by a launch hook (Cancelled,
      AWS's StatusMessage "Instance failed to complete user's Lifecycle Action: Lifecycle
      Action with token <t> was abandoned: Lifecycle Action Completed with ABANDON Result",
      or "...: Heartbeat Timeout" after `/lifecycle/expire`), a refresh's launches and
      terminations (Successful, AWS's Cause wording), and `POST /_standin/activity`.
  EC2
    * CreateLaunchTemplateVersion: SourceVersion honoured (the new version is the source
      version's data with the given top-level LaunchTemplateData keys replacing the
      inherited ones); UserData parsed as CreateLaunchTemplate does. Version "0" is not
      found (moto answered with the latest version).
  ECS
    * StopTask: AWS sets desiredStatus=STOPPED and the task then walks RUNNING ->
      DEACTIVATING -> STOPPING -> DEPROVISIONING -> STOPPED; moto jumps to STOPPED, counts
      a second StopTask twice and answers an unknown task with HTTP 500.
    * DRAINING: AWS's service scheduler replaces service tasks of a draining instance on
      other ACTIVE instances (and stalls without capacity); moto only flips the status.
      `POST /_standin/ecs/step` plays one scheduler step, `/_standin/ecs/auto` plays it
      periodically. moto's self-advancing task status is switched off.
    * runningTasksCount / pendingTasksCount (container instances, clusters) and a service's
      runningCount are derived from the tasks, as AWS reports them.
    * ListTasks: AWS defaults desiredStatus to RUNNING, matches containerInstance and the
      cluster exactly, filters on serviceName, pages by 100; moto returns STOPPED tasks too,
      substring-matches, ignores serviceName and does not page.
    * ListContainerInstances: pages by 100 and applies the `filter` expressions
      `ec2InstanceId == X`, `ec2InstanceId in [X, Y]`, `attribute:NAME == V` (moto ignores
      `filter`; other expressions are rejected here rather than silently ignored).
    * DescribeTasks: exact ARN/id match in the given cluster, `failures[]` MISSING entries.
    * Batch limits AWS enforces: DescribeTasks / DescribeContainerInstances <= 100,
      DescribeServices / UpdateContainerInstancesState <= 10.
  SNS -> Lambda
    * moto's `lambda` subscriptions break Publish; `POST /_standin/lambda/subscribe` hooks
      SNS publishing in-process instead and queues the envelope Lambda would receive.
  SSM
    * SendCommand / GetCommandInvocation: moto accepts any instance and always answers
      Success / 0 with empty output; tests script per instance what the run reports
      (status, exit code, stdout, polls spent InProgress) or that SSM cannot reach it
      (SendCommand -> InvalidInstanceId), and read back what was sent.
  Lambda
    * A minimal Runtime API (next / response / error / init error) so a real Rust binary
      built with `lambda_runtime` runs against this process (one function per process).

Everything else is plain moto 5.2.5. The patches reach into moto's internals and are only
valid for the pinned version (see requirements.txt).

CONTROL API (JSON in, JSON out; a bad request answers 400 {"error": "..."}):
  GET    /_standin/health                  {"ok": true}
  POST   /_standin/reset                   moto's reset + all stand-in state
  GET    /_standin/calls                   {"ecs:DescribeTasks": 3, ...}  (service = SigV4 scope name)
  DELETE /_standin/calls
  POST   /_standin/faults                  {"target": "ecs:DescribeTasks" (fnmatch pattern ok),
                                            "error": "ThrottlingException", "count": 2,
                                            "status": 400, "message": "Rate exceeded"}
  GET    /_standin/faults                  what is left;  DELETE /_standin/faults  clears
  POST   /_standin/lifecycle/start         {"asg", "hook", "instance_id", "transition"?, "region"?}
                                           -> {"token", "message", "delivered_to"}
  POST   /_standin/lifecycle/expire        {"instance_id"} -> the action
  POST   /_standin/lifecycle/test-notification {"asg", "hook"}: AWS's TEST_NOTIFICATION
  GET    /_standin/lifecycle/actions       [{"asg","hook","instance_id","token","transition",
                                             "state","result","started_at","completed_at",
                                             "complete_calls","heartbeat_calls","heartbeats","region"}]
  POST   /_standin/ecs/step                {"cluster"?, "max_replacements"?}
                                           -> {"advanced", "replaced", "stalled"}
  POST   /_standin/ecs/auto                {"interval_ms": 500}  (0 stops)
  POST   /_standin/ssm/outcome             {"instance_id", "status", "response_code", "stdout", "stderr"?,
                                            "in_progress_polls"?}: what the next runs report
  POST   /_standin/ssm/unreachable         {"instance_id"}: SendCommand fails with InvalidInstanceId
  GET    /_standin/ssm/commands            [{"command_id","document_name","instance_ids","parameters",
                                             "cloudwatch_output_config","timeout_seconds","comment","sent_at"}]
  POST   /_standin/ecs/tasks               {"cluster", "container_instance", "task_definition",
                                            "count", "started_by"?, "group"?} -> {"task_arns": [...]}
  POST   /_standin/lambda/invoke           {"event", "timeout_ms"?, "async"?}
  GET    /_standin/lambda/invocations      DELETE clears the finished ones
  POST   /_standin/lambda/subscribe        {"topic_arn", "timeout_ms"?}; DELETE {"topic_arn"?} undoes
  GET    /_standin/lambda/init-errors
  POST   /_standin/refresh/step            {"group", "launch_state"?: "InService" | "Pending:Wait",
                                            "terminate_state"?: "Terminated" | "Terminating:Wait"}
                                           -> {"status", "launched": [ids], "terminated": [ids],
                                               "waiting": [ids], "percentage", "instance_refresh_id"}
  POST   /_standin/refresh/fail            {"group", "reason"} -> the refresh (DescribeInstanceRefreshes
                                            shape plus "BatchInFlight")
  POST   /_standin/activity                {"group", "status_code", "description", "status_message"?,
                                            "cause"?} -> the activity (DescribeScalingActivities shape)
RUNTIME API (AWS_LAMBDA_RUNTIME_API=<host>:<port>): GET /2018-06-01/runtime/invocation/next,
  POST .../invocation/<id>/response, POST .../invocation/<id>/error, POST .../init/error.
"""

from __future__ import annotations

import argparse
import base64
import collections
import copy
import datetime as dt
import fnmatch
import io
import json
import math
import os
import re
import select
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from typing import Any

os.environ.setdefault("MOTO_ACCOUNT_ID", "123456789012")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# moto signs nothing and checks nothing; these only keep botocore quiet if it looks.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

import moto  # noqa: E402

if moto.__version__ != "5.2.5":  # the patches below are written against 5.2.5
    sys.stderr.write(f"standin: expected moto 5.2.5, found {moto.__version__}\n")
    sys.exit(2)

from werkzeug.serving import make_server  # noqa: E402

from moto.autoscaling import models as as_models  # noqa: E402
from moto.autoscaling import responses as as_responses  # noqa: E402
from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError  # noqa: E402
from moto.autoscaling.models import autoscaling_backends  # noqa: E402
from moto.core.exceptions import ServiceException  # noqa: E402
from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.core.utils import utcnow  # noqa: E402
from moto.ec2 import ec2_backends  # noqa: E402
from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound, MissingParameterError  # noqa: E402
from moto.ec2.models import launch_templates as ec2_lt_models  # noqa: E402
from moto.ec2.responses import launch_templates as ec2_lt_responses  # noqa: E402
from moto.ec2.utils import parse_user_data  # noqa: E402
from moto.ecs import models as ecs_models  # noqa: E402
from moto.ecs import responses as ecs_responses  # noqa: E402
from moto.ecs.exceptions import InvalidParameterException  # noqa: E402
from moto.ecs.models import ecs_backends  # noqa: E402
from moto.moto_api import state_manager  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sns import models as sns_models  # noqa: E402
from moto.sns.models import sns_backends  # noqa: E402
from moto.sqs.models import sqs_backends  # noqa: E402
from moto.core.exceptions import JsonRESTError  # noqa: E402
from moto.ssm import models as ssm_models  # noqa: E402
from moto.ssm import responses as ssm_responses  # noqa: E402

ACCOUNT_ID = os.environ["MOTO_ACCOUNT_ID"]
DEFAULT_REGION = "us-east-1"
FUNCTION_ARN = f"arn:aws:lambda:{DEFAULT_REGION}:{ACCOUNT_ID}:function:local"

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


def loaded_backends(backend_dict: Any) -> list[tuple[str, str, Any]]:
    """(account, region, backend) for every backend moto has instantiated so far."""
    out = []
    for account_id, per_region in list(dict.items(backend_dict)):
        for region, backend in list(dict.items(per_region)):
            out.append((account_id, region, backend))
    return out


class StandInError(Exception):
    """A control-endpoint error: answered as 400 {"error": message}."""


# --------------------------------------------------------------------------------------
# 1 + 2. Call counting and fault injection
# --------------------------------------------------------------------------------------

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


class Calls:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = collections.OrderedDict()
        self.faults: list[dict[str, Any]] = []

    def record(self, key: str) -> dict[str, Any] | None:
        """Count the call; return the fault to inject (and use it up), if any."""
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            for fault in self.faults:
                if fault["target"] == key or fnmatch.fnmatchcase(key, fault["target"]):
                    fault["count"] -= 1
                    if fault["count"] <= 0:
                        self.faults.remove(fault)
                    return dict(fault)
        return None

    def add_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        target = body.get("target")
        error = body.get("error")
        if not isinstance(target, str) or ":" not in target:
            raise StandInError('"target" must be "<service>:<Operation>", e.g. "ecs:DescribeTasks"')
        if not isinstance(error, str) or not error:
            raise StandInError('"error" must be an error code, e.g. "ThrottlingException"')
        count = body.get("count", 1)
        status = body.get("status", 400)
        message = body.get("message", "Rate exceeded")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise StandInError('"count" must be an integer >= 1')
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise StandInError('"status" must be an HTTP error status (400..599)')
        if not isinstance(message, str):
            raise StandInError('"message" must be a string')
        fault = {"target": target, "error": error, "count": count, "status": status, "message": message}
        with self.lock:
            self.faults.append(fault)
        return dict(fault)


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


# --------------------------------------------------------------------------------------
# 3. Auto Scaling lifecycle hooks and actions
# --------------------------------------------------------------------------------------

TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"


class LifecycleAction:
    def __init__(self, account_id: str, region: str, asg: str, hook: str, instance_id: str, transition: str):
        self.account_id = account_id
        self.region = region
        self.asg = asg
        self.hook = hook
        self.instance_id = instance_id
        self.transition = transition
        self.token = str(uuid.uuid4())
        self.state = "active"
        self.result: str | None = None
        self.started_at = time.time()
        self.completed_at: float | None = None
        self.complete_calls = 0
        self.heartbeat_calls = 0
        self.heartbeats: list[float] = []

    def to_json(self) -> dict[str, Any]:
        return {
            "asg": self.asg,
            "hook": self.hook,
            "instance_id": self.instance_id,
            "token": self.token,
            "transition": self.transition,
            "state": self.state,
            "result": self.result,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "complete_calls": self.complete_calls,
            "heartbeat_calls": self.heartbeat_calls,
            "heartbeats": list(self.heartbeats),
            "region": self.region,
        }


class Lifecycle:
    """Lifecycle actions. All methods run under MOTO_LOCK."""

    def __init__(self) -> None:
        self.actions: list[LifecycleAction] = []
        # instance id -> LifecycleState the stand-in reports (overrides moto's InService)
        self.instance_states: dict[str, str] = {}

    # ---- control endpoints ----

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        asg_name, hook_name, instance_id = body.get("asg"), body.get("hook"), body.get("instance_id")
        for key, val in (("asg", asg_name), ("hook", hook_name), ("instance_id", instance_id)):
            if not isinstance(val, str) or not val:
                raise StandInError(f'"{key}" is required (a string)')
        region = body.get("region", DEFAULT_REGION)
        backend = autoscaling_backends[ACCOUNT_ID][region]
        group = backend.autoscaling_groups.get(asg_name)
        if group is None:
            raise StandInError(f"unknown Auto Scaling group {asg_name!r}")
        hook = backend.lifecycle_hooks.get(f"{asg_name}_{hook_name}")
        if hook is None:
            raise StandInError(f"unknown lifecycle hook {hook_name!r} on group {asg_name!r}")
        if not any(s.instance.id == instance_id for s in group.instance_states):
            raise StandInError(f"instance {instance_id} is not in group {asg_name}")
        # Default: the hook's own transition (a terminate hook -> EC2_INSTANCE_TERMINATING).
        transition = body.get("transition") or hook.lifecycle_transition or TERMINATING
        if transition not in (TERMINATING, LAUNCHING):
            raise StandInError(f"transition must be {TERMINATING} or {LAUNCHING}, not {transition!r}")
        if hook.lifecycle_transition and transition != hook.lifecycle_transition:
            raise StandInError(f"hook {hook_name!r} is for {hook.lifecycle_transition}, not {transition}")
        if any(a.instance_id == instance_id and a.state == "active" for a in self.actions):
            raise StandInError(f"instance {instance_id} already has an active lifecycle action")
        target = getattr(hook, "notification_target_arn", None)
        self._check_target(target)

        action = LifecycleAction(ACCOUNT_ID, region, asg_name, hook_name, instance_id, transition)
        launching = transition == LAUNCHING
        # STAND-IN: what AWS sends for a lifecycle action (SNS Message / SQS body / EventBridge detail).
        message: dict[str, Any] = {
            "Origin": "EC2" if launching else "AutoScalingGroup",
            "Destination": "AutoScalingGroup" if launching else "EC2",
            "LifecycleHookName": hook_name,
            "AccountId": ACCOUNT_ID,
            "RequestId": str(uuid.uuid4()),
            "LifecycleTransition": transition,
            "AutoScalingGroupName": asg_name,
            "Service": "AWS Auto Scaling",
            "Time": iso_ms(action.started_at),
            "EC2InstanceId": instance_id,
            "LifecycleActionToken": action.token,
        }
        metadata = getattr(hook, "notification_metadata", None)
        if metadata:
            message["NotificationMetadata"] = metadata
        self.actions.append(action)
        self.instance_states[instance_id] = "Pending:Wait" if launching else "Terminating:Wait"
        word = "LAUNCHING" if launching else "TERMINATING"
        subject = f"Auto Scaling:  Lifecycle action '{word}' for instance {instance_id} in progress."
        delivered = self._deliver(target, json.dumps(message), subject)
        return {"token": action.token, "message": message, "delivered_to": delivered}

    def test_notification(self, body: dict[str, Any]) -> dict[str, Any]:
        """What AWS sends to a hook's target when the hook is created (extra endpoint)."""
        asg_name, hook_name = body.get("asg"), body.get("hook")
        region = body.get("region", DEFAULT_REGION)
        backend = autoscaling_backends[ACCOUNT_ID][region]
        group = backend.autoscaling_groups.get(asg_name)
        hook = backend.lifecycle_hooks.get(f"{asg_name}_{hook_name}")
        if group is None or hook is None:
            raise StandInError(f"unknown group {asg_name!r} or hook {hook_name!r}")
        target = getattr(hook, "notification_target_arn", None)
        self._check_target(target)
        message = {
            "AccountId": ACCOUNT_ID,
            "RequestId": str(uuid.uuid4()),
            "AutoScalingGroupARN": group.arn,
            "AutoScalingGroupName": asg_name,
            "Service": "AWS Auto Scaling",
            "Event": "autoscaling:TEST_NOTIFICATION",
            "Time": iso_ms(),
        }
        subject = f'Auto Scaling: test notification for group "{asg_name}"'
        delivered = self._deliver(target, json.dumps(message), subject)
        return {"message": message, "delivered_to": delivered}

    def expire(self, body: dict[str, Any]) -> dict[str, Any]:
        instance_id = body.get("instance_id")
        action = next((a for a in self.actions if a.instance_id == instance_id and a.state == "active"), None)
        if action is None:
            raise StandInError(f"no active lifecycle action for instance {instance_id!r}")
        # STAND-IN: the heartbeat/global timeout ran out; AWS applies the hook's DefaultResult.
        hook = autoscaling_backends[action.account_id][action.region].lifecycle_hooks.get(
            f"{action.asg}_{action.hook}"
        )
        default_result = getattr(hook, "default_result", None) or "ABANDON"
        action.state = "expired"
        action.result = default_result
        action.completed_at = time.time()
        self.instance_states[action.instance_id] = self._after_state(action.transition, default_result)
        if action.transition == LAUNCHING and default_result == "ABANDON":
            ACTIVITIES.abandoned_launch(action, "Heartbeat Timeout")
        return action.to_json()

    def list(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.actions]

    # ---- AWS API (called from the patched AutoScalingResponse) ----

    def complete(self, account_id: str, region: str, params: dict[str, Any]) -> None:
        action, matched = self._match(account_id, region, params)
        if matched is not None:
            matched.complete_calls += 1
        result = params.get("LifecycleActionResult")
        if result not in ("CONTINUE", "ABANDON"):
            raise ValidationError(
                f"Invalid value for LifecycleActionResult: {result!r}. Valid values are CONTINUE and ABANDON."
            )
        if action is None:
            raise ValidationError(self._not_found(params))
        action.state = "completed"
        action.result = result
        action.completed_at = time.time()
        self.instance_states[action.instance_id] = self._after_state(action.transition, result)
        if action.transition == LAUNCHING and result == "ABANDON":
            ACTIVITIES.abandoned_launch(action, "Lifecycle Action Completed with ABANDON Result")

    def heartbeat(self, account_id: str, region: str, params: dict[str, Any]) -> None:
        action, matched = self._match(account_id, region, params)
        if matched is not None:
            matched.heartbeat_calls += 1
        if action is None:
            raise ValidationError(self._not_found(params))
        action.heartbeats.append(time.time())

    # ---- helpers ----

    def _match(self, account_id: str, region: str, params: dict[str, Any]):
        """(active action, most relevant action in any state) for asg + hook + token/instance."""
        asg, hook = params.get("AutoScalingGroupName"), params.get("LifecycleHookName")
        token, instance_id = params.get("LifecycleActionToken"), params.get("InstanceId")
        if not token and not instance_id:
            raise ValidationError("Either LifecycleActionToken or InstanceId must be specified.")
        cands = [
            a
            for a in self.actions
            if a.account_id == account_id
            and a.region == region
            and a.asg == asg
            and a.hook == hook
            and (a.token == token if token else a.instance_id == instance_id)
            and (not token or not instance_id or a.instance_id == instance_id)
        ]
        active = [a for a in cands if a.state == "active"]
        matched = active[-1] if active else (cands[-1] if cands else None)
        return (active[-1] if active else None), matched

    @staticmethod
    def _not_found(params: dict[str, Any]) -> str:
        # STAND-IN: AWS's wording.
        if params.get("LifecycleActionToken"):
            return f"No active Lifecycle Action found with token {params['LifecycleActionToken']}"
        return f"No active Lifecycle Action found with instance ID {params.get('InstanceId')}"

    @staticmethod
    def _after_state(transition: str, result: str) -> str:
        if transition == LAUNCHING:
            return "Pending:Proceed" if result == "CONTINUE" else "Terminating"
        return "Terminating:Proceed"

    @staticmethod
    def _check_target(target: str | None) -> None:
        if not target:
            return
        parts = target.split(":")
        if len(parts) < 6:
            raise StandInError(f"hook notification target {target!r} is not an ARN")
        service, region, account = parts[2], parts[3], parts[4]
        if service == "sns":
            if target not in sns_backends[account][region].topics:
                raise StandInError(f"hook notification target topic {target} does not exist")
        elif service == "sqs":
            try:
                sqs_backends[account][region].get_queue(parts[5])
            except Exception:
                raise StandInError(f"hook notification target queue {target} does not exist")

    @staticmethod
    def _deliver(target: str | None, message: str, subject: str) -> str | None:
        if not target:
            return None  # EventBridge-only hook: nothing to deliver here
        parts = target.split(":")
        service, region, account = parts[2], parts[3], parts[4]
        if service == "sns":
            # Through moto's SNS backend: SQS subscriptions get the SNS envelope and the
            # stand-in Lambda subscriptions (section 5) fire.
            sns_backends[account][region].publish(message, arn=target, subject=subject)
            return target
        if service == "sqs":
            sqs_backends[account][region].send_message(parts[5], message)
            return target
        return None


LIFECYCLE = Lifecycle()


def _instance_state_lifecycle_state(self: Any) -> str:
    # STAND-IN: the serializer reads `LifecycleState` before moto's `lifecycle_state`, so
    # the instance reports the lifecycle state the stand-in gave it; moto's own logic
    # (which counts `lifecycle_state == "InService"`) is left untouched.
    return LIFECYCLE.instance_states.get(self.instance.id, self.lifecycle_state)


as_models.InstanceState.LifecycleState = property(_instance_state_lifecycle_state)


def _put_lifecycle_hook(self: Any) -> ActionResult:
    """STAND-IN for PutLifecycleHook: keeps every field AWS keeps; an existing hook is updated."""
    name = self._get_param("LifecycleHookName")
    as_name = self._get_param("AutoScalingGroupName")
    backend = self.autoscaling_backend
    if as_name not in backend.autoscaling_groups:
        raise ValidationError(f"No Auto Scaling group found with name {as_name}")
    old = backend.lifecycle_hooks.get(f"{as_name}_{name}")

    def pick(param: str, attr: str, default: Any) -> Any:
        value = self._get_param(param)
        if value is not None:
            return value
        return getattr(old, attr, default) if old is not None else default

    timeout = pick("HeartbeatTimeout", "heartbeat_timeout", 3600)
    timeout = int(timeout)
    if not 30 <= timeout <= 7200:
        raise ValidationError(f"Heartbeat timeout must be between 30 and 7200 seconds, got {timeout}.")
    result = pick("DefaultResult", "default_result", "ABANDON")
    if result not in ("CONTINUE", "ABANDON"):
        raise ValidationError(f"Invalid value for DefaultResult: {result}. Valid values are CONTINUE and ABANDON.")
    with MOTO_LOCK:
        hook = backend.create_lifecycle_hook(
            name=name,
            as_name=as_name,
            transition=pick("LifecycleTransition", "lifecycle_transition", None),
            timeout=timeout,
            result=result,
        )
        hook.notification_target_arn = pick("NotificationTargetARN", "notification_target_arn", None)
        hook.role_arn = pick("RoleARN", "role_arn", None)
        hook.notification_metadata = pick("NotificationMetadata", "notification_metadata", None)
        hook.global_timeout = min(172800, 100 * timeout)
    return EmptyResult()


def _lifecycle_params(self: Any) -> dict[str, Any]:
    return {
        k: self._get_param(k)
        for k in (
            "AutoScalingGroupName",
            "LifecycleHookName",
            "LifecycleActionToken",
            "InstanceId",
            "LifecycleActionResult",
        )
    }


def _complete_lifecycle_action(self: Any) -> ActionResult:
    with MOTO_LOCK:
        LIFECYCLE.complete(self.current_account, self.region, _lifecycle_params(self))
    return EmptyResult()


def _record_lifecycle_action_heartbeat(self: Any) -> ActionResult:
    with MOTO_LOCK:
        LIFECYCLE.heartbeat(self.current_account, self.region, _lifecycle_params(self))
    return EmptyResult()


as_responses.AutoScalingResponse.put_lifecycle_hook = _put_lifecycle_hook
as_responses.AutoScalingResponse.complete_lifecycle_action = _complete_lifecycle_action
as_responses.AutoScalingResponse.record_lifecycle_action_heartbeat = _record_lifecycle_action_heartbeat


# --------------------------------------------------------------------------------------
# 3b. Auto Scaling scaling activities and instance refresh; EC2 launch template versions
# --------------------------------------------------------------------------------------


def activity_time(d: dt.datetime) -> str:
    """The timestamp inside an activity's Cause, e.g. 2026-11-22T05:01:02Z."""
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def json_times(obj: Any) -> Any:
    """A control endpoint's answer with moto's naive UTC datetimes as ISO 8601 strings."""
    if isinstance(obj, dt.datetime):
        return obj.strftime("%Y-%m-%dT%H:%M:%S.") + f"{obj.microsecond // 1000:03d}Z"
    if isinstance(obj, dict):
        return {k: json_times(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_times(v) for v in obj]
    return obj


def capacity_launch_cause(group: Any, at: dt.datetime) -> str:
    desired = group.desired_capacity or 0
    return (
        f"At {activity_time(at)} an instance was started in response to a difference between desired "
        f"and actual capacity, increasing the capacity from {max(desired - 1, 0)} to {desired}."
    )


def refresh_launch_cause(at: dt.datetime) -> str:
    return f"At {activity_time(at)} an instance was launched in response to an instance refresh."


def refresh_terminate_cause(at: dt.datetime, instance_id: str) -> str:
    t = activity_time(at)
    return (
        f"At {t} an instance was taken out of service in response to an instance refresh.  "
        f"At {t} instance {instance_id} was selected for termination."
    )


class Activities:
    """STAND-IN: the scaling activities AWS records for a group. moto's
    DescribeScalingActivities always answers an empty list; here it lists what the
    stand-in recorded (newest first): a launch ABANDONed by a launch hook (`Cancelled`),
    the launches and terminations of an instance refresh (`Successful`), and what a
    test posts to `/_standin/activity`. All methods run under MOTO_LOCK."""

    FINAL = ("Successful", "Failed", "Cancelled")

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def record(self, account_id: str, region: str, group_name: str, status_code: str, description: str,
               cause: str, status_message: str | None = None, instance: Any = None,
               start: dt.datetime | None = None) -> dict[str, Any]:
        now = utcnow()
        group = autoscaling_backends[account_id][region].autoscaling_groups.get(group_name)
        item: dict[str, Any] = {
            "ActivityId": str(uuid.uuid4()),
            "AutoScalingGroupName": group_name,
            "Description": description,
            "Cause": cause,
            "StartTime": start or now,
            "StatusCode": status_code,
            "Progress": 100 if status_code in self.FINAL else 0,
            "_account": account_id,
            "_region": region,
        }
        if status_code in self.FINAL:
            item["EndTime"] = now
        if status_message:
            item["StatusMessage"] = status_message
        if group is not None:
            item["AutoScalingGroupARN"] = group.arn
        if instance is not None:
            item["Details"] = json.dumps(
                {"Subnet ID": instance.subnet_id or "", "Availability Zone": instance.placement.zone},
                separators=(",", ":"),
            )
        self.items.append(item)
        return item

    def launched(self, account_id: str, region: str, group: Any, instance: Any, status_code: str, cause: str,
                 status_message: str | None = None, start: dt.datetime | None = None) -> None:
        self.record(account_id, region, group.name, status_code, f"Launching a new EC2 instance: {instance.id}",
                    cause, status_message, instance, start)

    def abandoned_launch(self, action: Any, why: str) -> None:
        """A launch hook's action ended with ABANDON: AWS cancels the launch activity."""
        group = autoscaling_backends[action.account_id][action.region].autoscaling_groups.get(action.asg)
        member = _member(group, action.instance_id) if group is not None else None
        if group is None or member is None:
            return
        started = dt.datetime.fromtimestamp(action.started_at, tz=dt.timezone.utc).replace(tzinfo=None)
        if getattr(member, "standin_refresh_launch", False):
            cause = refresh_launch_cause(started)
        else:
            cause = capacity_launch_cause(group, started)
        message = (
            "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token "
            f"{action.token} was abandoned: {why}"
        )
        self.launched(action.account_id, action.region, group, member.instance, "Cancelled", cause, message,
                      started)

    def terminated(self, account_id: str, region: str, group: Any, instance: Any, cause: str) -> None:
        self.record(account_id, region, group.name, "Successful", f"Terminating EC2 instance: {instance.id}",
                    cause, None, instance)

    @staticmethod
    def public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /_standin/activity`: record an activity for a test."""
        name, code, description = body.get("group"), body.get("status_code"), body.get("description")
        for key, val in (("group", name), ("status_code", code), ("description", description)):
            if not isinstance(val, str) or not val:
                raise StandInError(f'"{key}" is required (a string)')
        if code not in SCALING_ACTIVITY_STATUS_CODES:
            raise StandInError(f'"status_code" {code!r} is not a ScalingActivityStatusCode')
        region = body.get("region", DEFAULT_REGION)
        if name not in autoscaling_backends[ACCOUNT_ID][region].autoscaling_groups:
            raise StandInError(f"unknown Auto Scaling group {name!r}")
        for key in ("status_message", "cause"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise StandInError(f'"{key}" must be a string')
        cause = body.get("cause") or f"At {activity_time(utcnow())} a user request was recorded by a test."
        return json_times(self.public(self.record(ACCOUNT_ID, region, name, code, description, cause,
                                                  body.get("status_message"))))

    def describe(self, account_id: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("AutoScalingGroupName")
        ids = params.get("ActivityIds") or []
        found = [
            a for a in reversed(self.items)
            if a["_account"] == account_id and a["_region"] == region
            and (not name or a["AutoScalingGroupName"] == name)
            and (not ids or a["ActivityId"] in ids)
        ]
        page, token = page_records(found, params.get("MaxRecords"), params.get("NextToken"), 100)
        out: dict[str, Any] = {"Activities": [self.public(a) for a in page]}
        if token:
            out["NextToken"] = token
        return out


SCALING_ACTIVITY_STATUS_CODES = (
    "PendingSpotBidPlacement", "WaitingForSpotInstanceRequestId", "WaitingForSpotInstanceId",
    "WaitingForInstanceId", "PreInService", "InProgress", "WaitingForELBConnectionDraining",
    "MidLifecycleAction", "WaitingForInstanceWarmup", "Successful", "Failed", "Cancelled",
    "WaitingForConnectionDraining",
)

ACTIVITIES = Activities()


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


# ---- which launch template version an instance was launched from ----

_orig_replace_instances = as_models.FakeAutoScalingGroup.replace_autoscaling_group_instances


def _replace_instances(self: Any, count_needed: int, propagated_tags: dict[str, str]) -> None:
    """STAND-IN: moto launches a group's instances from the group's launch template
    version but tags them (and reports them) with the template's default version. Record
    the version actually used on the instance, as AWS reports it in
    Instances[].LaunchTemplate and in the instance's aws:ec2launchtemplate:version tag."""
    before = {id(s) for s in self.instance_states}
    _orig_replace_instances(self, count_needed, propagated_tags)
    template = self.ec2_launch_template
    if template is None:
        return
    version = template.get_version(self.launch_template_version)
    for state in self.instance_states:
        if id(state) in before:
            continue
        state.standin_launch = (template.id, template.name, version.number)
        state.instance.add_tags({"aws:ec2launchtemplate:id": template.id,
                                 "aws:ec2launchtemplate:version": str(version.number)})


def _instance_state_launch_template(self: Any) -> dict[str, Any] | None:
    spec = getattr(self, "standin_launch", None)
    if spec is None:
        return self.launch_template
    return {"LaunchTemplateId": spec[0], "LaunchTemplateName": spec[1], "Version": str(spec[2])}


as_models.FakeAutoScalingGroup.replace_autoscaling_group_instances = _replace_instances
as_models.InstanceState.LaunchTemplate = property(_instance_state_launch_template)


# ---- instance refresh ----

ACTIVE_REFRESH = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
REFRESH_DEFAULTS = {
    "MinHealthyPercentage": 90,
    "SkipMatching": False,
    "AutoRollback": False,
    "ScaleInProtectedInstances": "Ignore",
    "StandbyInstances": "Ignore",
}


class InstanceRefresh:
    def __init__(self, account_id: str, region: str, group_name: str, strategy: str,
                 desired: dict[str, Any] | None, preferences: dict[str, Any], target: tuple[Any, int] | None) -> None:
        self.account_id = account_id
        self.region = region
        self.group_name = group_name
        self.id = str(uuid.uuid4())
        self.strategy = strategy
        self.desired = desired
        self.preferences = preferences
        self.target = target  # (ec2 LaunchTemplate, version number) the refresh launches from
        self.status = "Pending"
        self.status_reason: str | None = None
        self.start_time = utcnow()
        self.end_time: dt.datetime | None = None
        self.total = 0
        self.done = 0  # old instances replaced so far
        self.percentage = 0
        self.to_update = 0
        self.rollback: dict[str, Any] | None = None
        self.rollback_target: tuple[Any, int] | None = None
        self.deployed: list[str] = []  # instances this refresh launched (its own configuration)
        self.batch: dict[str, Any] | None = None
        self.refill = 0  # launched instances lost since (launch ABANDONed): capacity to launch again

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "InstanceRefreshId": self.id,
            "AutoScalingGroupName": self.group_name,
            "Status": self.status,
            "StartTime": self.start_time,
            "PercentageComplete": self.percentage,
            "InstancesToUpdate": self.to_update,
            "ProgressDetails": {"LivePoolProgress": {"PercentageComplete": self.percentage,
                                                     "InstancesToUpdate": self.to_update}},
            "Preferences": self.preferences,
            "Strategy": self.strategy,
        }
        if self.status_reason:
            out["StatusReason"] = self.status_reason
        if self.end_time is not None:
            out["EndTime"] = self.end_time
        if self.desired is not None:
            out["DesiredConfiguration"] = self.desired
        if self.rollback is not None:
            out["RollbackDetails"] = self.rollback
        return out

    def to_json(self) -> dict[str, Any]:
        out = json_times(self.to_api())
        out["BatchInFlight"] = self.batch is not None
        return out


def _resolve_launch_template(region: str, spec: dict[str, Any]) -> tuple[Any, int]:
    """(template, version number) of a LaunchTemplateSpecification, as AWS validates it."""
    tid, tname = spec.get("LaunchTemplateId"), spec.get("LaunchTemplateName")
    if bool(tid) == bool(tname):
        raise ValidationError("Valid requests must contain either launchTemplateId or LaunchTemplateName")
    ec2 = ec2_backends[ACCOUNT_ID][region]
    try:
        template = ec2.get_launch_template(tid) if tid else ec2.get_launch_template_by_name(tname)
        version = template.get_version(spec.get("Version") or "$Default")
    except ServiceException as e:
        raise ValidationError(f"You must use a valid fully-formed launch template. {e.message}")
    return template, version.number


def _group_config(group: Any) -> tuple[Any, int] | None:
    """The group's own launch template version, resolved now (None: launch configuration)."""
    template = group.ec2_launch_template
    if template is None:
        return None
    return template, template.get_version(group.launch_template_version).number


def _floating_version(group: Any) -> bool:
    return group.ec2_launch_template is None or str(group.launch_template_version).lower() in ("$latest", "$default")


class Refreshes:
    """STAND-IN for instance refresh (moto answers HTTP 500). StartInstanceRefresh,
    DescribeInstanceRefreshes, CancelInstanceRefresh and RollbackInstanceRefresh keep
    AWS's rules and errors; the refresh itself advances one batch per
    `POST /_standin/refresh/step`. All methods run under MOTO_LOCK."""

    def __init__(self) -> None:
        self.items: list[InstanceRefresh] = []

    # ---- lookups ----

    def _group(self, account_id: str, region: str, name: Any) -> Any:
        group = autoscaling_backends[account_id][region].autoscaling_groups.get(name)
        if group is None:
            raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup '{name}' not found")
        return group

    def _for_group(self, account_id: str, region: str, name: str) -> list[InstanceRefresh]:
        return [r for r in self.items if r.account_id == account_id and r.region == region and r.group_name == name]

    def _active(self, account_id: str, region: str, name: str) -> InstanceRefresh | None:
        return next((r for r in reversed(self._for_group(account_id, region, name)) if r.status in ACTIVE_REFRESH),
                    None)

    # ---- AWS API ----

    def start(self, account_id: str, region: str, params: dict[str, Any]) -> str:
        name = params.get("AutoScalingGroupName")
        group = self._group(account_id, region, name)
        strategy = params.get("Strategy") or "Rolling"
        if strategy not in ("Rolling", "ReplaceRootVolume"):
            raise ValidationError(
                f"1 validation error detected: Value '{strategy}' at 'strategy' failed to satisfy constraint: "
                "Member must satisfy enum value set: [Rolling, ReplaceRootVolume]"
            )
        if strategy != "Rolling":
            raise ValidationError("stand-in: only the Rolling strategy is emulated")
        preferences = dict(REFRESH_DEFAULTS)
        preferences.update({k: v for k, v in (params.get("Preferences") or {}).items() if v is not None})
        self._check_preferences(preferences, params.get("Preferences") or {})
        desired_in = params.get("DesiredConfiguration") or None
        desired = None
        target = _group_config(group)
        if desired_in:
            if desired_in.get("MixedInstancesPolicy"):
                raise ValidationError("stand-in: DesiredConfiguration.MixedInstancesPolicy is not emulated")
            lt = desired_in.get("LaunchTemplate")
            if not lt:
                raise ValidationError("stand-in: a DesiredConfiguration needs a LaunchTemplate here")
            target = _resolve_launch_template(region, lt)
            desired = {"LaunchTemplate": {k: lt[k] for k in ("LaunchTemplateId", "LaunchTemplateName", "Version")
                                          if lt.get(k)}}
        if self._active(account_id, region, name) is not None:
            raise AutoscalingClientError(
                "InstanceRefreshInProgress",
                "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.",
            )
        if preferences["AutoRollback"]:
            if desired is None:
                raise ValidationError(
                    "The request isn't valid. The AutoRollback parameter cannot be set to true when the "
                    "DesiredConfiguration parameter is empty. Set AutoRollback to false or specify a desired "
                    "configuration and try again."
                )
            version = str(desired["LaunchTemplate"].get("Version") or "$Default").lower()
            if _floating_version(group) or version in ("$latest", "$default"):
                # AWS documents that a group on $Latest / $Default cannot be rolled back; refusing
                # a desired configuration on them too is the stand-in's stricter reading. Wording: ours.
                raise ValidationError(
                    "The request isn't valid. The AutoRollback parameter cannot be set to true when the Auto "
                    "Scaling group or the desired configuration uses the $Latest or $Default launch template "
                    "version. Specify a launch template version number and try again."
                )
        if target is None:
            raise ValidationError("stand-in: an instance refresh of a group without a launch template is not emulated")
        ref = InstanceRefresh(account_id, region, name, strategy, desired, preferences, target)
        ref.total = len(self._victims(ref, group))
        ref.to_update = ref.total
        self.items.append(ref)
        return ref.id

    @staticmethod
    def _check_preferences(p: dict[str, Any], given: dict[str, Any]) -> None:
        low = p["MinHealthyPercentage"]
        if not 0 <= int(low) <= 100:
            raise ValidationError("MinHealthyPercentage must be between 0 and 100.")
        if "MaxHealthyPercentage" in given and given["MaxHealthyPercentage"] is not None:
            high = int(given["MaxHealthyPercentage"])
            if not 100 <= high <= 200:
                raise ValidationError("MaxHealthyPercentage must be between 100 and 200.")
            if given.get("MinHealthyPercentage") is None:
                raise ValidationError("MinHealthyPercentage must be specified when MaxHealthyPercentage is specified.")
            if high - int(low) > 100:
                raise ValidationError(
                    "The difference between MaxHealthyPercentage and MinHealthyPercentage cannot be greater than 100."
                )
        for key, allowed in (("ScaleInProtectedInstances", ("Refresh", "Ignore", "Wait")),
                             ("StandbyInstances", ("Terminate", "Ignore", "Wait"))):
            if p[key] not in allowed:
                member = key[0].lower() + key[1:]
                raise ValidationError(
                    f"1 validation error detected: Value '{p[key]}' at 'preferences.{member}' failed to satisfy "
                    f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
                )

    def describe(self, account_id: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("AutoScalingGroupName")
        self._group(account_id, region, name)
        ids = params.get("InstanceRefreshIds") or []
        found = [r for r in reversed(self._for_group(account_id, region, name)) if not ids or r.id in ids]
        page, token = page_records(found, params.get("MaxRecords"), params.get("NextToken"), 50)
        out: dict[str, Any] = {"InstanceRefreshes": [r.to_api() for r in page]}
        if token:
            out["NextToken"] = token
        return out

    def cancel(self, account_id: str, region: str, params: dict[str, Any]) -> str:
        name = params.get("AutoScalingGroupName")
        self._group(account_id, region, name)
        ref = self._active(account_id, region, name)
        if ref is None or ref.status == "Cancelling":
            raise self._not_found(name)
        ref.status = "Cancelling"
        return ref.id

    def rollback_api(self, account_id: str, region: str, params: dict[str, Any]) -> str:
        name = params.get("AutoScalingGroupName")
        group = self._group(account_id, region, name)
        ref = self._active(account_id, region, name)
        if ref is None or ref.status not in ("Pending", "InProgress", "Baking"):
            raise self._not_found(name)
        if ref.desired is None or _floating_version(group):
            raise AutoscalingClientError(
                "IrreversibleInstanceRefresh",
                "The request failed because a desired configuration was not found or an incompatible launch "
                "template (uses a Systems Manager parameter instead of an AMI ID) or launch template version "
                "($Latest or $Default) is present on the Auto Scaling group.",
            )
        self._start_rollback(ref, group, "Rollback initiated by user request.")  # wording: ours
        return ref.id

    @staticmethod
    def _not_found(name: str) -> AutoscalingClientError:
        return AutoscalingClientError(
            "ActiveInstanceRefreshNotFound",
            f"No in progress or pending Instance Refresh found for Auto Scaling group {name}",
        )

    def _start_rollback(self, ref: InstanceRefresh, group: Any, reason: str) -> None:
        ref.rollback = {
            "RollbackReason": reason,
            "RollbackStartTime": utcnow(),
            "PercentageCompleteOnRollback": ref.percentage,
            "InstancesToUpdateOnRollback": ref.to_update,
            "ProgressDetailsOnRollback": {"LivePoolProgress": {"PercentageComplete": ref.percentage,
                                                               "InstancesToUpdate": ref.to_update}},
        }
        ref.rollback_target = _group_config(group)
        ref.status = "RollbackInProgress"

    # ---- control endpoints ----

    def _control_target(self, body: dict[str, Any]) -> tuple[str, Any, InstanceRefresh]:
        name = body.get("group")
        if not isinstance(name, str) or not name:
            raise StandInError('"group" is required (a string)')
        region = body.get("region", DEFAULT_REGION)
        group = autoscaling_backends[ACCOUNT_ID][region].autoscaling_groups.get(name)
        if group is None:
            raise StandInError(f"unknown Auto Scaling group {name!r}")
        refs = self._for_group(ACCOUNT_ID, region, name)
        if not refs:
            raise StandInError(f"group {name!r} has no instance refresh")
        return region, group, refs[-1]

    def fail(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /_standin/refresh/fail`: the active refresh fails (as after failed health checks)."""
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason:
            raise StandInError('"reason" is required (a string)')
        _, group, ref = self._control_target(body)
        if ref.status in ("Pending", "InProgress", "Baking"):
            if ref.preferences.get("AutoRollback"):
                ref.status_reason = reason
                self._start_rollback(ref, group, reason)
            else:
                self._end(ref, "Failed", reason)
        elif ref.status == "RollbackInProgress":
            self._end(ref, "RollbackFailed", reason)
        else:
            raise StandInError(f"the group's latest refresh is {ref.status}: nothing to fail")
        return ref.to_json()

    def step(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /_standin/refresh/step`: one batch of the group's latest refresh."""
        launch_state = body.get("launch_state", "InService")
        terminate_state = body.get("terminate_state", "Terminated")
        if launch_state not in ("InService", "Pending:Wait"):
            raise StandInError('"launch_state" must be "InService" or "Pending:Wait"')
        if terminate_state not in ("Terminated", "Terminating:Wait"):
            raise StandInError('"terminate_state" must be "Terminated" or "Terminating:Wait"')
        region, group, ref = self._control_target(body)
        backend = autoscaling_backends[ACCOUNT_ID][region]
        out: dict[str, Any] = {"launched": [], "terminated": [], "waiting": []}
        if ref.status == "Pending":
            ref.status = "InProgress"
        elif ref.status == "Baking":
            self._succeed(ref, group)
        elif ref.status in ("InProgress", "RollbackInProgress", "Cancelling"):
            hooks = self._hooks(backend, group, launch_state, terminate_state)
            self._reap(ref, backend, group, out)
            carried = ref.batch is not None
            if carried:  # a batch waiting on lifecycle actions: carry it on, start no other
                self._advance(ref, backend, group, out)
            if ref.batch is None:
                if ref.status == "Cancelling":
                    if ref.refill:  # Auto Scaling keeps the capacity, from the group's configuration
                        for state in self._launch(ref, group, _group_config(group), ref.refill, out):
                            ACTIVITIES.launched(ref.account_id, ref.region, group, state.instance, "Successful",
                                                capacity_launch_cause(group, utcnow()))
                        ref.refill = 0
                    self._end(ref, "Cancelled", None)
                else:
                    victims = self._victims(ref, group)
                    if (victims or ref.refill) and not carried:
                        self._new_batch(ref, group, victims, hooks, out)
                        self._advance(ref, backend, group, out)
                    if ref.batch is None and not ref.refill and not self._victims(ref, group):
                        self._finish(ref, group)
        self._progress(ref, group)
        return {"status": ref.status, "launched": out["launched"], "terminated": out["terminated"],
                "waiting": out["waiting"], "percentage": ref.percentage, "instance_refresh_id": ref.id}

    # ---- the refresh itself ----

    @staticmethod
    def _hooks(backend: Any, group: Any, launch_state: str, terminate_state: str) -> dict[str, str | None]:
        """The group's hooks that the batch should wait on (none unless asked for)."""
        out: dict[str, str | None] = {"launch": None, "terminate": None}
        for key, wanted, transition in (("launch", launch_state == "Pending:Wait", LAUNCHING),
                                        ("terminate", terminate_state == "Terminating:Wait", TERMINATING)):
            if not wanted:
                continue
            hook = next((h for h in backend.lifecycle_hooks.values()
                         if h.auto_scaling_group_name == group.name and h.lifecycle_transition == transition), None)
            if hook is None:
                raise StandInError(f"group {group.name!r} has no {transition} hook to wait on")
            out[key] = hook.name
        return out

    def _victims(self, ref: InstanceRefresh, group: Any) -> list[str]:
        """Instances still to replace: refresh -> the ones not on the target configuration
        (SkipMatching) or not launched by this refresh; rollback -> the ones it launched."""
        busy = set()
        if ref.batch is not None:
            busy = set(ref.batch["old"]) | set(ref.batch["new"])
        out = []
        for state in group.instance_states:
            iid = state.instance.id
            if iid in busy:
                continue
            lifecycle = state.LifecycleState
            if ref.status == "RollbackInProgress":
                if iid in ref.deployed and lifecycle in ("InService", "Pending:Proceed"):
                    out.append(iid)
                continue
            if iid in ref.deployed:
                continue
            if lifecycle == "Standby":
                if ref.preferences["StandbyInstances"] != "Terminate":
                    continue
            elif lifecycle != "InService":
                continue
            if state.protected_from_scale_in and ref.preferences["ScaleInProtectedInstances"] != "Refresh":
                continue
            if ref.preferences["SkipMatching"] and self._matches(state, ref.target):
                continue
            out.append(iid)
        return out

    @staticmethod
    def _matches(state: Any, target: tuple[Any, int] | None) -> bool:
        """AWS's skip matching: same launch template and version (not merely the same AMI)."""
        spec = getattr(state, "standin_launch", None)
        return target is not None and spec is not None and spec[0] == target[0].id and spec[2] == target[1]

    @staticmethod
    def _batch_size(ref: InstanceRefresh, group: Any) -> int:
        """How many instances AWS replaces at a time: the room between MinHealthyPercentage
        and MaxHealthyPercentage (default 100) of the desired capacity, at least one."""
        desired = group.desired_capacity or len(group.instance_states)
        keep = math.ceil(desired * int(ref.preferences["MinHealthyPercentage"]) / 100)
        room = math.floor(desired * int(ref.preferences.get("MaxHealthyPercentage", 100)) / 100)
        return max(1, room - keep)

    def _reap(self, ref: InstanceRefresh, backend: Any, group: Any, out: dict[str, Any]) -> None:
        """An instance the refresh launched whose launch was ABANDONed after its batch (or
        that a terminate action let go) is terminated, as Auto Scaling does; its capacity is
        launched again with the next batch."""
        in_batch = set(ref.batch["new"]) if ref.batch is not None else set()
        for iid in list(ref.deployed):
            if iid in in_batch:
                continue
            member = _member(group, iid)
            if member is not None and LIFECYCLE.instance_states.get(iid) not in ("Terminating", "Terminating:Proceed"):
                continue
            ref.deployed.remove(iid)
            ref.refill += 1
            if member is not None:
                _terminate_in_group(backend, group, iid)
                out["terminated"].append(iid)

    @staticmethod
    def _launch(ref: InstanceRefresh, group: Any, config: tuple[Any, int] | None, count: int,
                out: dict[str, Any]) -> list[Any]:
        if config is None:
            raise StandInError(f"group {group.name!r} has no launch template to launch from")
        states = _launch_into_group(group, config, count)
        out["launched"].extend(s.instance.id for s in states)
        return states

    def _new_batch(self, ref: InstanceRefresh, group: Any, victims: list[str], hooks: dict[str, str | None],
                   out: dict[str, Any]) -> None:
        rolling_back = ref.status == "RollbackInProgress"
        config = ref.rollback_target if rolling_back else ref.target
        old = victims[:self._batch_size(ref, group)]
        states = self._launch(ref, group, config, len(old) + ref.refill, out)
        ref.refill = 0
        new = [s.instance.id for s in states]
        if not rolling_back:
            ref.deployed.extend(new)
        ref.batch = {"old": old, "new": new, "pending": [], "terminating": [], "ready": 0, "hooks": hooks}
        for state in states:
            state.standin_refresh_launch = True
            if hooks["launch"]:
                LIFECYCLE.start({"asg": group.name, "hook": hooks["launch"], "instance_id": state.instance.id,
                                 "transition": LAUNCHING, "region": ref.region})
                ref.batch["pending"].append(state.instance.id)
            else:
                ACTIVITIES.launched(ref.account_id, ref.region, group, state.instance, "Successful",
                                    refresh_launch_cause(utcnow()))
                ref.batch["ready"] += 1

    def _advance(self, ref: InstanceRefresh, backend: Any, group: Any, out: dict[str, Any]) -> None:
        """Carries the current batch on: new instances in service, then old ones out."""
        batch = ref.batch
        assert batch is not None
        for iid in list(batch["pending"]):
            state = LIFECYCLE.instance_states.get(iid)
            member = _member(group, iid)
            if member is not None and state == "Pending:Wait":
                out["waiting"].append(iid)
                continue
            batch["pending"].remove(iid)
            if member is None or state in ("Terminating", "Terminating:Wait", "Terminating:Proceed"):
                # The launch was ABANDONed (or the instance went away): Auto Scaling terminates
                # it; one old instance of this batch stays for a later batch.
                if member is not None:
                    _terminate_in_group(backend, group, iid)
                    out["terminated"].append(iid)
                if iid in ref.deployed:
                    ref.deployed.remove(iid)
                batch["new"].remove(iid)
                if batch["old"]:
                    batch["old"].pop()
                continue
            LIFECYCLE.instance_states.pop(iid, None)  # Pending:Proceed -> InService
            ACTIVITIES.launched(ref.account_id, ref.region, group, member.instance, "Successful",
                                refresh_launch_cause(utcnow()))
            batch["ready"] += 1
        if out["waiting"]:
            return
        # One old instance leaves for each new one in service.
        while batch["ready"] > 0 and batch["old"]:
            iid = batch["old"].pop(0)
            batch["ready"] -= 1
            member = _member(group, iid)
            if member is None:
                self._count_done(ref)
                continue
            if batch["hooks"]["terminate"]:
                LIFECYCLE.start({"asg": group.name, "hook": batch["hooks"]["terminate"], "instance_id": iid,
                                 "transition": TERMINATING, "region": ref.region})
                batch["terminating"].append(iid)
            else:
                self._remove(ref, backend, group, member, out)
        for iid in list(batch["terminating"]):
            member = _member(group, iid)
            if member is not None and LIFECYCLE.instance_states.get(iid) == "Terminating:Wait":
                out["waiting"].append(iid)
                continue
            batch["terminating"].remove(iid)
            if member is None:
                self._count_done(ref)
            else:
                self._remove(ref, backend, group, member, out)
        if not out["waiting"] and not batch["pending"] and not batch["terminating"]:
            ref.batch = None

    def _remove(self, ref: InstanceRefresh, backend: Any, group: Any, member: Any, out: dict[str, Any]) -> None:
        iid = member.instance.id
        _terminate_in_group(backend, group, iid)
        out["terminated"].append(iid)
        ACTIVITIES.terminated(ref.account_id, ref.region, group, member.instance,
                              refresh_terminate_cause(utcnow(), iid))
        if ref.status == "RollbackInProgress" and iid in ref.deployed:
            ref.deployed.remove(iid)
        self._count_done(ref)

    @staticmethod
    def _count_done(ref: InstanceRefresh) -> None:
        if ref.rollback is None:
            ref.done += 1

    def _progress(self, ref: InstanceRefresh, group: Any) -> None:
        if ref.status in ("Successful", "Baking"):
            ref.percentage, ref.to_update = 100, 0
        elif ref.rollback is not None:
            # PercentageComplete goes back down to zero; InstancesToUpdate keeps what was
            # not yet updated when the rollback started.
            present = sum(1 for iid in ref.deployed if _member(group, iid) is not None)
            ref.percentage = 0 if not ref.total else min(100, 100 * present // ref.total)
            if ref.status == "RollbackSuccessful":
                ref.percentage = 0
        else:
            ref.total = max(ref.total, ref.done)
            ref.percentage = 100 if not ref.total else 100 * ref.done // ref.total
            ref.to_update = max(ref.total - ref.done, 0)

    def _finish(self, ref: InstanceRefresh, group: Any) -> None:
        if ref.status == "RollbackInProgress":
            self._end(ref, "RollbackSuccessful", ref.status_reason)
        elif ref.status == "InProgress":
            if int(ref.preferences.get("BakeTime") or 0) > 0:
                ref.status = "Baking"
            else:
                self._succeed(ref, group)

    def _succeed(self, ref: InstanceRefresh, group: Any) -> None:
        """AWS applies the desired configuration to the group once the refresh succeeds."""
        if ref.desired is not None:
            lt = dict(ref.desired["LaunchTemplate"])
            if lt.get("LaunchTemplateId") and lt.get("LaunchTemplateName"):
                lt.pop("LaunchTemplateName")
            group._set_launch_configuration(None, lt, None)
            if group.launch_config is not None:
                group.launch_config = None
                group.launch_configuration_name = None
        self._end(ref, "Successful", None)

    @staticmethod
    def _end(ref: InstanceRefresh, status: str, reason: str | None) -> None:
        ref.status = status
        ref.status_reason = reason
        ref.end_time = utcnow()
        ref.batch = None


def _member(group: Any, instance_id: str) -> Any | None:
    return next((s for s in group.instance_states if s.instance.id == instance_id), None)


def _launch_into_group(group: Any, config: tuple[Any, int], count: int) -> list[Any]:
    """Launches `count` instances into the group from one launch template version, with
    moto's own group launch (the group's configuration is swapped in for the call)."""
    template, number = config
    saved = (group.ec2_launch_template, group.launch_template_version, group.launch_config)
    before = {id(s) for s in group.instance_states}
    group.ec2_launch_template, group.launch_template_version, group.launch_config = template, str(number), None
    try:
        group.replace_autoscaling_group_instances(count, group.get_propagated_tags())
    finally:
        group.ec2_launch_template, group.launch_template_version, group.launch_config = saved
    return [s for s in group.instance_states if id(s) not in before]


def _terminate_in_group(backend: Any, group: Any, instance_id: str) -> None:
    """What moto's DetachInstances + TerminateInstances do, minus its capacity
    adjustment (moto would trim or refill the group mid-batch)."""
    group.instance_states = [s for s in group.instance_states if s.instance.id != instance_id]
    backend.ec2_backend.delete_tags([instance_id], {as_models.ASG_NAME_TAG: group.name})
    backend.ec2_backend.terminate_instances([instance_id])
    backend.update_attached_elbs(group.name)
    backend.update_attached_target_groups(group.name)
    LIFECYCLE.instance_states.pop(instance_id, None)


REFRESHES = Refreshes()


def _as_params(self: Any, *names: str) -> dict[str, Any]:
    return {k: self._get_param(k) for k in names}


def _start_instance_refresh(self: Any) -> ActionResult:
    params = _as_params(self, "AutoScalingGroupName", "Strategy", "DesiredConfiguration", "Preferences")
    with MOTO_LOCK:
        return ActionResult({"InstanceRefreshId": REFRESHES.start(self.current_account, self.region, params)})


def _describe_instance_refreshes(self: Any) -> ActionResult:
    params = _as_params(self, "AutoScalingGroupName", "InstanceRefreshIds", "MaxRecords", "NextToken")
    with MOTO_LOCK:
        return ActionResult(REFRESHES.describe(self.current_account, self.region, params))


def _cancel_instance_refresh(self: Any) -> ActionResult:
    params = _as_params(self, "AutoScalingGroupName")
    with MOTO_LOCK:
        return ActionResult({"InstanceRefreshId": REFRESHES.cancel(self.current_account, self.region, params)})


def _rollback_instance_refresh(self: Any) -> ActionResult:
    params = _as_params(self, "AutoScalingGroupName")
    with MOTO_LOCK:
        return ActionResult({"InstanceRefreshId": REFRESHES.rollback_api(self.current_account, self.region, params)})


def _describe_scaling_activities(self: Any) -> ActionResult:
    params = _as_params(self, "AutoScalingGroupName", "ActivityIds", "MaxRecords", "NextToken")
    with MOTO_LOCK:
        return ActionResult(ACTIVITIES.describe(self.current_account, self.region, params))


as_responses.AutoScalingResponse.start_instance_refresh = _start_instance_refresh
as_responses.AutoScalingResponse.describe_instance_refreshes = _describe_instance_refreshes
as_responses.AutoScalingResponse.cancel_instance_refresh = _cancel_instance_refresh
as_responses.AutoScalingResponse.rollback_instance_refresh = _rollback_instance_refresh
as_responses.AutoScalingResponse.describe_scaling_activities = _describe_scaling_activities


# ---- EC2 launch template versions ----


def _create_launch_template_version(self: Any) -> ActionResult:
    """STAND-IN for CreateLaunchTemplateVersion: moto ignores SourceVersion (AWS: the new
    version starts as a copy of the source version's data, and each top-level key given in
    LaunchTemplateData replaces the inherited one) and keeps UserData unparsed (a later
    launch from that version then fails inside moto)."""
    name = self._get_param("LaunchTemplateName")
    template_id = self._get_param("LaunchTemplateId")
    if not name and not template_id:
        raise MissingParameterError("launch template ID or launch template name")
    with MOTO_LOCK:
        template = (self.ec2_backend.get_launch_template(template_id) if template_id
                    else self.ec2_backend.get_launch_template_by_name(name))
        given = self._get_param("LaunchTemplateData", {}) or {}
        if given.get("UserData") is not None:
            given["UserData"] = parse_user_data(given["UserData"])
        source = self._get_param("SourceVersion")
        data: dict[str, Any] = {}
        if source is not None:
            data = copy.deepcopy(template.get_version(source).data)
        data.update(given)
        self.error_on_dryrun()
        version = template.create_version(data, self._get_param("VersionDescription"))
        return ActionResult({
            "LaunchTemplateVersion": {
                "CreateTime": version.create_time,
                "CreatedBy": f"arn:{self.partition}:iam::{self.current_account}:root",
                "DefaultVersion": template.is_default(version),
                "LaunchTemplateData": version.data,
                "LaunchTemplateId": template.id,
                "LaunchTemplateName": template.name,
                "VersionDescription": version.description,
                "VersionNumber": version.number,
            },
        })


_orig_lt_get_version = ec2_lt_models.LaunchTemplate.get_version


def _lt_get_version(self: Any, num: Any) -> Any:
    # STAND-IN: moto turns version "0" (or "-1") into the last version; AWS finds none.
    if str(num).lower() not in ("$latest", "$default"):
        try:
            if int(num) < 1:
                raise InvalidLaunchTemplateVersionNotFound(template_id=self.id, version=num)
        except ValueError:
            raise InvalidLaunchTemplateVersionNotFound(template_id=self.id, version=num)
    return _orig_lt_get_version(self, num)


ec2_lt_responses.LaunchTemplates.create_launch_template_version = _create_launch_template_version
ec2_lt_models.LaunchTemplate.get_version = _lt_get_version


# --------------------------------------------------------------------------------------
# 4. ECS
# --------------------------------------------------------------------------------------

STOP_PROGRESSION = {
    "PROVISIONING": "STOPPED",
    "PENDING": "STOPPED",
    "ACTIVATING": "DEACTIVATING",
    "RUNNING": "DEACTIVATING",
    "DEACTIVATING": "STOPPING",
    "STOPPING": "DEPROVISIONING",
    "DEPROVISIONING": "STOPPED",
}

_orig_task_init = ecs_models.Task.__init__


def _task_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _orig_task_init(self, *args, **kwargs)
    # STAND-IN: AWS reports these for a running task; moto leaves them out and keeps
    # containers PENDING forever.
    now = utcnow()
    self.created_at = now
    self.started_at = now
    self.pull_started_at = now
    self.pull_stopped_at = now
    self.connectivity = "CONNECTED"
    self.connectivity_at = now
    if not self.launch_type and self.container_instance_arn:
        self.launch_type = "EC2"  # moto leaves "" for StartTask
    for c in self.containers:
        c.last_status = "RUNNING"
        # moto puts the task definition ARN here
        c.task_arn = self.task_arn
        c.container_arn = (
            f"arn:aws:ecs:{self.region_name}:{self._account_id}:container/{self.cluster_name}/"
            f"{self.id}/{uuid.uuid4()}"
        )


ecs_models.Task.__init__ = _task_init


def _ci_id(arn_or_id: str) -> str:
    return arn_or_id.split("/")[-1]


def _mark_stopped(task: Any) -> None:
    now = utcnow()
    task.last_status = "STOPPED"
    task.stopped_at = now
    task.execution_stopped_at = now
    task.connectivity = "DISCONNECTED"
    for c in task.containers:
        c.last_status = "STOPPED"
        c.exitCode = 0 if getattr(task, "stop_code", None) != "EssentialContainerExited" else 1


def _sync_counts(backend: Any, cluster_name: str | None = None) -> None:
    """STAND-IN: derive the counters AWS reports from the tasks themselves.
    Container instance runningTasksCount = its tasks with desiredStatus RUNNING (AWS drops
    a task from it as soon as it is told to stop); pendingTasksCount = those still PENDING.
    Cluster counts likewise; a service's runningCount = its tasks (group service:<name>)
    RUNNING with desiredStatus RUNNING."""
    names = [cluster_name] if cluster_name else list(backend.clusters)
    for name in names:
        tasks = list(backend.tasks.get(name, {}).values())
        per_ci: dict[str, list[int]] = {}
        running = pending = 0
        for t in tasks:
            if t.desired_status != "RUNNING":
                continue
            is_pending = t.last_status in ("PROVISIONING", "PENDING", "ACTIVATING")
            if t.container_instance_arn:
                c = per_ci.setdefault(_ci_id(t.container_instance_arn), [0, 0])
                c[1 if is_pending else 0] += 1
            if is_pending:
                pending += 1
            elif t.last_status == "RUNNING":
                running += 1
        for ci_id, ci in backend.container_instances.get(name, {}).items():
            r, p = per_ci.get(ci_id, [0, 0])
            ci.running_tasks_count = r
            ci.pending_tasks_count = p
        cluster = backend.clusters.get(name)
        if cluster is not None:
            cluster.running_tasks_count = running
            cluster.pending_tasks_count = pending
            cluster.registered_container_instances_count = len(backend.container_instances.get(name, {}))
        for service in backend.services.values():
            if service.cluster_name != name:
                continue
            group = f"service:{service.name}"
            s_running = sum(
                1 for t in tasks if t.group == group and t.desired_status == "RUNNING" and t.last_status == "RUNNING"
            )
            s_pending = sum(
                1
                for t in tasks
                if t.group == group and t.desired_status == "RUNNING" and t.last_status in ("PROVISIONING", "PENDING")
            )
            service.running_count = s_running
            service.pending_count = s_pending
            for d in service.deployments:
                if d.get("status") == "PRIMARY":
                    d["runningCount"] = s_running
                    d["pendingCount"] = s_pending
                    d["rolloutState"] = "COMPLETED" if s_running >= service.desired_count else "IN_PROGRESS"


def _stop_task_model(backend: Any, cluster: Any, task: Any, reason: str, stop_code: str) -> None:
    """Tell a task to stop, as ECS does. A task already told to stop is left alone."""
    if task.desired_status == "STOPPED":
        return
    if task.container_instance_arn and task.resource_requirements:
        ci = backend.container_instances.get(cluster.name, {}).get(_ci_id(task.container_instance_arn))
        if ci is not None:
            try:
                backend.update_container_instance_resources(ci, task.resource_requirements, removing=True)
            except ValueError:  # a host port moto never recorded
                pass
    task.desired_status = "STOPPED"
    task.stopped_reason = reason
    task.stop_code = stop_code
    task.stopping_at = utcnow()
    nxt = STOP_PROGRESSION.get(task.last_status)
    if task.last_status in ("PROVISIONING", "PENDING"):
        _mark_stopped(task)
    elif task.last_status in ("RUNNING", "ACTIVATING") and nxt:
        task.last_status = nxt
    _sync_counts(backend, cluster.name)


def _find_task(backend: Any, cluster: Any, task_str: str) -> Any | None:
    tasks = backend.tasks.get(cluster.name, {})
    if task_str in tasks:
        return tasks[task_str]
    task_id = task_str.split("/")[-1]
    for t in tasks.values():
        if t.id == task_id:
            return t
    return None


def _stop_task(self: Any, cluster_str: str, task_str: str, reason: str | None) -> Any:
    """STAND-IN for StopTask: desiredStatus STOPPED, lastStatus DEACTIVATING (then the
    ECS step walks it to STOPPED), no double counting, AWS's error for an unknown task."""
    with MOTO_LOCK:
        cluster = self._get_cluster(cluster_str)
        task = _find_task(self, cluster, task_str or "")
        if task is None:
            raise InvalidParameterException("The referenced task was not found.")
        _stop_task_model(self, cluster, task, reason or "Task stopped by user", "UserInitiated")
        return task


def _place_task(backend: Any, cluster: Any, ci: Any, task_definition: Any, started_by: str, group: str,
                network_configuration: Any = None, overrides: Any = None) -> Any:
    resource_requirements = backend._calculate_task_resource_requirements(task_definition)
    task = ecs_models.Task(
        cluster,
        task_definition,
        ci.container_instance_arn,
        resource_requirements,
        backend=backend,
        group=group,
        overrides=overrides or {},
        started_by=started_by or "",
        launch_type="EC2",
        networking_configuration=network_configuration or None,
    )
    backend.update_container_instance_resources(ci, resource_requirements)
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    return task


def _describe_tasks_response(self: Any) -> ActionResult:
    """STAND-IN for DescribeTasks: exact match in the named cluster, failures[] MISSING."""
    cluster_str = self._get_param("cluster", "default")
    wanted = self._get_param("tasks", []) or []
    with MOTO_LOCK:
        cluster = self.ecs_backend._get_cluster(cluster_str)
        if not wanted:
            raise InvalidParameterException("Tasks cannot be empty.")
        if len(wanted) > 100:
            raise InvalidParameterException("Tasks cannot have more than 100 items.")
        tasks, failures = [], []
        for w in wanted:
            t = _find_task(self.ecs_backend, cluster, w)
            if t is None:
                arn = w if w.startswith("arn:") else (
                    f"arn:aws:ecs:{self.region}:{self.current_account}:task/{cluster.name}/{w}"
                )
                failures.append({"arn": arn, "reason": "MISSING"})
            elif t not in tasks:
                tasks.append(t)
    if "TAGS" in (self._get_param("include", []) or []):
        self._include_in_response(ecs_responses.DESCRIBE_TASKS_TAGS)
    else:
        self._exclude_from_response(ecs_responses.DESCRIBE_TASKS_TAGS)
    return ActionResult({"tasks": tasks, "failures": failures})


def _page(self: Any, items: list[str], key: str) -> ActionResult:
    """AWS paging for List* calls: maxResults 1..100 (default 100), opaque nextToken."""
    max_results = self._get_param("maxResults")
    if max_results is None:
        max_results = 100
    max_results = int(max_results)
    if not 1 <= max_results <= 100:
        raise InvalidParameterException("maxResults must be between 1 and 100.")
    token = self._get_param("nextToken")
    start = 0
    if token:
        try:
            start = int(json.loads(base64.b64decode(token))["offset"])
        except Exception:
            raise InvalidParameterException("Invalid nextToken.")
    page = items[start:start + max_results]
    result: dict[str, Any] = {key: page}
    if start + max_results < len(items):
        result["nextToken"] = base64.b64encode(json.dumps({"offset": start + max_results}).encode()).decode()
    return ActionResult(result)


def _list_tasks_response(self: Any) -> ActionResult:
    """STAND-IN for ListTasks (see the module docstring)."""
    backend = self.ecs_backend
    with MOTO_LOCK:
        cluster = backend._get_cluster(self._get_param("cluster", "default"))
        container_instance = self._get_param("containerInstance")
        family = self._get_param("family")
        started_by = self._get_param("startedBy")
        service_name = self._get_param("serviceName")
        desired = self._get_param("desiredStatus") or "RUNNING"
        launch_type = self._get_param("launchType")
        out = []
        for t in backend.tasks.get(cluster.name, {}).values():
            if t.desired_status != desired:
                continue
            if container_instance and (
                not t.container_instance_arn or _ci_id(t.container_instance_arn) != _ci_id(container_instance)
            ):
                continue
            if family and t.task_definition_arn.split("/")[-1].split(":")[0] != family:
                continue
            if started_by and t.started_by != started_by:
                continue
            if service_name and t.group != f"service:{service_name.split('/')[-1]}":
                continue
            if launch_type and (t.launch_type or "EC2") != launch_type:
                continue
            out.append(t.task_arn)
        return _page(self, out, "taskArns")


_FILTER_EQ = re.compile(r"^\s*(ec2InstanceId|attribute:[\w.\-]+)\s*==\s*['\"]?([^'\"\s]+)['\"]?\s*$")
_FILTER_IN = re.compile(r"^\s*ec2InstanceId\s+in\s*\[([^\]]*)\]\s*$")


def _ci_filter(expr: str):
    """A subset of ECS's cluster query language, for ListContainerInstances."""
    m = _FILTER_EQ.match(expr)
    if m:
        field, value = m.group(1), m.group(2)
        if field == "ec2InstanceId":
            return lambda ci: ci.ec2_instance_id == value
        name = field[len("attribute:"):]
        return lambda ci: str((ci.attributes or {}).get(name)) == value
    m = _FILTER_IN.match(expr)
    if m:
        values = {v.strip().strip("'\"") for v in m.group(1).split(",") if v.strip()}
        return lambda ci: ci.ec2_instance_id in values
    raise InvalidParameterException(
        f"stand-in: unsupported filter expression {expr!r} (supported: ec2InstanceId == X, "
        "ec2InstanceId in [X, Y], attribute:NAME == V)"
    )


def _list_container_instances_response(self: Any) -> ActionResult:
    """STAND-IN for ListContainerInstances: `filter` applied, paged by 100."""
    backend = self.ecs_backend
    with MOTO_LOCK:
        cluster = backend._get_cluster(self._get_param("cluster", "default"))
        status = self._get_param("status")
        expr = self._get_param("filter")
        pred = _ci_filter(expr) if expr else (lambda ci: True)
        arns = [
            ci.container_instance_arn
            for ci in backend.container_instances.get(cluster.name, {}).values()
            if (status is None or ci.status == status) and pred(ci)
        ]
        return _page(self, arns, "containerInstanceArns")


ecs_responses.EC2ContainerServiceResponse.describe_tasks = _describe_tasks_response
ecs_responses.EC2ContainerServiceResponse.list_tasks = _list_tasks_response
ecs_responses.EC2ContainerServiceResponse.list_container_instances = _list_container_instances_response
ecs_models.EC2ContainerServiceBackend.stop_task = _stop_task


def _wrap_backend_method(name: str, limit: int | None = None, limit_arg: int = 1, what: str = "", sync: bool = True):
    orig = getattr(ecs_models.EC2ContainerServiceBackend, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with MOTO_LOCK:
            if limit is not None and len(args) > limit_arg and args[limit_arg] and len(args[limit_arg]) > limit:
                raise InvalidParameterException(f"{what} cannot have more than {limit} items.")
            if args and isinstance(args[0], str):
                # moto raises KeyError (HTTP 500) for a cluster that never had an instance
                name = args[0].split("/")[-1]
                if name in self.clusters:
                    self.container_instances.setdefault(name, {})
            if sync:
                _sync_counts(self)
            return orig(self, *args, **kwargs)

    wrapper.__name__ = name
    setattr(ecs_models.EC2ContainerServiceBackend, name, wrapper)


# Counters are recomputed before anything reports them; AWS's batch limits enforced.
_wrap_backend_method("describe_container_instances", limit=100, what="Container instances")
_wrap_backend_method("describe_services", limit=10, what="Services")
_wrap_backend_method("update_container_instances_state", limit=10, what="Container instances")
_wrap_backend_method("describe_clusters")
_wrap_backend_method("deregister_container_instance")


def _ecs_targets(cluster: str | None) -> list[tuple[Any, Any]]:
    out = []
    name = cluster.split("/")[-1] if cluster else None
    for _, _, backend in loaded_backends(ecs_backends):
        for cl in list(backend.clusters.values()):
            if name is None or cl.name == name:
                out.append((backend, cl))
    if name is not None and not out:
        raise StandInError(f"unknown ECS cluster {cluster!r}")
    return out


_RR: dict[str, int] = {}  # round-robin position per cluster ARN


def ecs_step(cluster: str | None = None, max_replacements: int | None = None) -> dict[str, int]:
    """STAND-IN: one step of ECS's agent + service scheduler (see section 4 of the module doc)."""
    advanced = replaced = stalled = 0
    with MOTO_LOCK:
        for backend, cl in _ecs_targets(cluster):
            tasks = backend.tasks.get(cl.name, {})
            # a) tasks told to stop move one state towards STOPPED
            for task in list(tasks.values()):
                if task.desired_status == "STOPPED" and task.last_status != "STOPPED":
                    nxt = STOP_PROGRESSION.get(task.last_status, "STOPPED")
                    if nxt == "STOPPED":
                        _mark_stopped(task)
                    else:
                        task.last_status = nxt
                    advanced += 1
            # b) service tasks on DRAINING instances are replaced on ACTIVE ones
            cis = list(backend.container_instances.get(cl.name, {}).values())
            active = [ci for ci in cis if ci.status == "ACTIVE"]
            for ci in cis:
                if ci.status != "DRAINING":
                    continue
                for task in list(tasks.values()):
                    if task.container_instance_arn != ci.container_instance_arn:
                        continue
                    if task.desired_status != "RUNNING" or not (task.started_by or "").startswith("ecs-svc/"):
                        continue
                    service = None
                    if (task.group or "").startswith("service:"):
                        service = backend.services.get(f"{cl.name}:{task.group[len('service:'):]}")
                    if service is not None and service.scheduling_strategy == "DAEMON":
                        continue
                    if max_replacements is not None and replaced >= max_replacements:
                        stalled += 1
                        continue
                    if not active:
                        stalled += 1  # no spare capacity: the drain stalls, as on AWS
                        continue
                    pos = _RR.get(cl.arn, 0)
                    _RR[cl.arn] = pos + 1
                    target = active[pos % len(active)]
                    task_definition = backend.describe_task_definition(task.task_definition_arn)
                    _place_task(
                        backend, cl, target, task_definition, task.started_by, task.group,
                        network_configuration=getattr(task, "network_configuration", None),
                        overrides=task.overrides,
                    )
                    _stop_task_model(
                        backend, cl, task,
                        "Task stopped because its container instance is DRAINING "
                        "(replaced by the service scheduler)",
                        "ServiceSchedulerInitiated",
                    )
                    replaced += 1
            # c) counters
            _sync_counts(backend, cl.name)
    return {"advanced": advanced, "replaced": replaced, "stalled": stalled}


def ecs_seed_tasks(body: dict[str, Any]) -> dict[str, Any]:
    cluster_str, ci_str, td_str = body.get("cluster"), body.get("container_instance"), body.get("task_definition")
    count = body.get("count", 1)
    for key, val in (("cluster", cluster_str), ("container_instance", ci_str), ("task_definition", td_str)):
        if not isinstance(val, str) or not val:
            raise StandInError(f'"{key}" is required (a string)')
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise StandInError('"count" must be an integer >= 1')
    with MOTO_LOCK:
        (backend, cl), *_ = _ecs_targets(cluster_str)
        ci = backend.container_instances.get(cl.name, {}).get(_ci_id(ci_str))
        if ci is None:
            raise StandInError(f"unknown container instance {ci_str!r} in cluster {cl.name}")
        try:
            task_definition = backend.describe_task_definition(td_str)
        except Exception:
            raise StandInError(f"unknown task definition {td_str!r}")
        group = body.get("group") or f"family:{task_definition.family}"
        arns = [
            _place_task(backend, cl, ci, task_definition, body.get("started_by") or "", group).task_arn
            for _ in range(count)
        ]
        _sync_counts(backend, cl.name)
    return {"task_arns": arns}


class AutoStepper:
    """Runs ecs_step() every interval on a background thread (no busy loop)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stop_event: threading.Event | None = None
        self.interval_ms = 0

    def set(self, interval_ms: int) -> None:
        with self.lock:
            if self.stop_event is not None:
                self.stop_event.set()
                self.stop_event = None
            self.interval_ms = interval_ms
            if interval_ms > 0:
                stop = threading.Event()
                self.stop_event = stop
                threading.Thread(target=self._run, args=(stop, interval_ms / 1000.0), daemon=True).start()

    @staticmethod
    def _run(stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                ecs_step()
            except Exception:
                log("auto step failed:\n" + traceback.format_exc())


AUTO_STEPPER = AutoStepper()


# --------------------------------------------------------------------------------------
# 5. Lambda: Runtime API + invocations + SNS subscriptions
# --------------------------------------------------------------------------------------


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
        sub = {"topic_arn": topic_arn, "timeout_ms": timeout_ms, "subscription_arn": f"{topic_arn}:{uuid.uuid4()}"}
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
        # STAND-IN: the event Lambda receives from an SNS subscription.
        event = {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": sub["subscription_arn"],
                    "Sns": {
                        "Type": "Notification",
                        "MessageId": message_id,
                        "TopicArn": topic_arn,
                        "Subject": subject,
                        "Message": message,
                        "Timestamp": iso_ms(),
                        "SignatureVersion": "1",
                        "Signature": "EXAMPLE",
                        "SigningCertUrl": "https://example.com/cert.pem",
                        "UnsubscribeUrl": "https://example.com/unsub",
                        "MessageAttributes": attrs,
                    },
                }
            ]
        }
        self.enqueue(event, sub["timeout_ms"], "sns")

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


# --------------------------------------------------------------------------------------
# SSM Run Command
# --------------------------------------------------------------------------------------


class SsmStandIn:
    """STAND-IN: AWS runs a Command document on the instance and reports its status,
    exit code and output; moto's SendCommand accepts any instance and its
    GetCommandInvocation always answers Success / 0 with empty output. Tests script,
    per instance, what the run reports (`/_standin/ssm/outcome`) or that SSM cannot
    reach the instance (`/_standin/ssm/unreachable`: SendCommand then fails with
    InvalidInstanceId, as AWS answers for an instance that is not SSM-managed).
    Instances with nothing scripted get moto's canned answer."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.unreachable: dict[str, str] = {}
        self.sent: list[dict[str, Any]] = []
        self.polls: dict[tuple[str, str], int] = {}

    def script(self, body: dict[str, Any]) -> dict[str, Any]:
        iid = body.get("instance_id")
        if not isinstance(iid, str) or not iid.startswith("i-"):
            raise StandInError('"instance_id" must be an EC2 instance id')
        status = body.get("status", "Success")
        if status not in ("Success", "Failed", "TimedOut", "Cancelled", "Undeliverable"):
            raise StandInError(f'"status" {status!r} is not a final invocation status')
        code = body.get("response_code", 0)
        polls = body.get("in_progress_polls", 0)
        if not isinstance(code, int) or not isinstance(polls, int) or polls < 0:
            raise StandInError('"response_code" and "in_progress_polls" must be integers')
        self.outcomes[iid] = {
            "status": status,
            "response_code": code,
            "stdout": str(body.get("stdout", "")),
            "stderr": str(body.get("stderr", "")),
            "in_progress_polls": polls,
        }
        return {}

    def set_unreachable(self, body: dict[str, Any]) -> dict[str, Any]:
        iid = body.get("instance_id")
        if not isinstance(iid, str) or not iid.startswith("i-"):
            raise StandInError('"instance_id" must be an EC2 instance id')
        self.unreachable[iid] = f"Instances [[{iid}]] not in a valid state for account {ACCOUNT_ID}"
        return {}

    def list_sent(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.sent)


SSM = SsmStandIn()
_orig_ssm_send_command = ssm_responses.SimpleSystemManagerResponse.send_command
_orig_ssm_get_command_invocation = ssm_models.SimpleSystemManagerBackend.get_command_invocation


def _ssm_send_command(self: Any) -> ActionResult:
    instance_ids = self._get_param("InstanceIds", [])
    for iid in instance_ids:
        if iid in SSM.unreachable:
            raise JsonRESTError("InvalidInstanceId", SSM.unreachable[iid])
    result = _orig_ssm_send_command(self)
    command = self.ssm_backend._commands[-1]
    SSM.sent.append({
        "command_id": command.command_id,
        "document_name": self._get_param("DocumentName"),
        "instance_ids": instance_ids,
        "parameters": self._get_param("Parameters", {}),
        "cloudwatch_output_config": self._get_param("CloudWatchOutputConfig"),
        "timeout_seconds": self._get_param("TimeoutSeconds"),
        "comment": self._get_param("Comment", ""),
        "sent_at": time.time(),
    })
    return result


def _ssm_get_command_invocation(self: Any, command_id: str, instance_id: str, plugin_name: str | None) -> dict[str, Any]:
    invocation = dict(_orig_ssm_get_command_invocation(self, command_id, instance_id, plugin_name))
    outcome = SSM.outcomes.get(instance_id)
    if outcome is None:
        return invocation
    n = SSM.polls[(command_id, instance_id)] = SSM.polls.get((command_id, instance_id), 0) + 1
    if n <= outcome["in_progress_polls"]:
        invocation.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1,
                          StandardOutputContent="", StandardErrorContent="")
    else:
        # AWS keeps the first 24000 / 8000 characters of stdout / stderr.
        invocation.update(Status=outcome["status"], StatusDetails=outcome["status"],
                          ResponseCode=outcome["response_code"],
                          StandardOutputContent=outcome["stdout"][:24000],
                          StandardErrorContent=outcome["stderr"][:8000])
    return invocation


ssm_responses.SimpleSystemManagerResponse.send_command = _ssm_send_command
ssm_models.SimpleSystemManagerBackend.get_command_invocation = _ssm_get_command_invocation


# --------------------------------------------------------------------------------------
# HTTP: middleware, control endpoints, runtime API
# --------------------------------------------------------------------------------------


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


def json_response(start_response: Any, status: int, obj: Any, headers: list | None = None) -> list[bytes]:
    body = json.dumps(obj, default=str).encode()
    reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
              410: "Gone", 500: "Internal Server Error"}.get(status, "")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + (headers or []),
    )
    return [body]


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


class StandInApp:
    def __init__(self) -> None:
        self.moto_app = DomainDispatcherApplication(create_backend_app)
        self.routes = {
            ("GET", "/_standin/health"): lambda b: {"ok": True},
            ("POST", "/_standin/reset"): self._reset_all,
            ("GET", "/_standin/calls"): self._list_calls,
            ("DELETE", "/_standin/calls"): self._reset_calls,
            ("GET", "/_standin/faults"): self._list_faults,
            ("POST", "/_standin/faults"): CALLS.add_fault,
            ("DELETE", "/_standin/faults"): self._clear_faults,
            ("POST", "/_standin/lifecycle/start"): self._locked(LIFECYCLE.start),
            ("POST", "/_standin/lifecycle/expire"): self._locked(LIFECYCLE.expire),
            ("POST", "/_standin/lifecycle/test-notification"): self._locked(LIFECYCLE.test_notification),
            ("GET", "/_standin/lifecycle/actions"): self._locked(lambda b: LIFECYCLE.list()),
            ("POST", "/_standin/ecs/step"): self._ecs_step,
            ("POST", "/_standin/ecs/auto"): self._ecs_auto,
            ("POST", "/_standin/ecs/tasks"): ecs_seed_tasks,
            ("POST", "/_standin/lambda/invoke"): LAMBDA.invoke,
            ("GET", "/_standin/lambda/invocations"): lambda b: LAMBDA.list(),
            ("DELETE", "/_standin/lambda/invocations"): lambda b: (LAMBDA.clear(), {})[1],
            ("POST", "/_standin/lambda/subscribe"): LAMBDA.subscribe,
            ("DELETE", "/_standin/lambda/subscribe"): LAMBDA.unsubscribe,
            ("GET", "/_standin/lambda/init-errors"): lambda b: list(LAMBDA.init_errors),
            ("POST", "/_standin/ssm/outcome"): self._locked(SSM.script),
            ("POST", "/_standin/ssm/unreachable"): self._locked(SSM.set_unreachable),
            ("GET", "/_standin/ssm/commands"): self._locked(SSM.list_sent),
            ("POST", "/_standin/refresh/step"): self._locked(REFRESHES.step),
            ("POST", "/_standin/refresh/fail"): self._locked(REFRESHES.fail),
            ("POST", "/_standin/activity"): self._locked(ACTIVITIES.post),
        }

    @staticmethod
    def _locked(fn):
        def run(body: dict[str, Any]) -> Any:
            with MOTO_LOCK:
                return fn(body)
        return run

    @staticmethod
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
            _RR.clear()
        with CALLS.lock:
            CALLS.counts.clear()
            CALLS.faults.clear()
        LAMBDA.unsubscribe({})
        LAMBDA.clear()
        return {}

    @staticmethod
    def _list_calls(body: dict[str, Any]) -> dict[str, int]:
        with CALLS.lock:
            return dict(CALLS.counts)

    @staticmethod
    def _list_faults(body: dict[str, Any]) -> list[dict[str, Any]]:
        with CALLS.lock:
            return [dict(f) for f in CALLS.faults]

    @staticmethod
    def _reset_calls(body: dict[str, Any]) -> dict[str, Any]:
        with CALLS.lock:
            CALLS.counts.clear()
        return {}

    @staticmethod
    def _clear_faults(body: dict[str, Any]) -> dict[str, Any]:
        with CALLS.lock:
            CALLS.faults.clear()
        return {}

    @staticmethod
    def _ecs_step(body: dict[str, Any]) -> dict[str, Any]:
        max_r = body.get("max_replacements")
        if max_r is not None and (not isinstance(max_r, int) or isinstance(max_r, bool) or max_r < 0):
            raise StandInError('"max_replacements" must be an integer >= 0')
        return ecs_step(body.get("cluster"), max_r)

    @staticmethod
    def _ecs_auto(body: dict[str, Any]) -> dict[str, Any]:
        interval = body.get("interval_ms")
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 0:
            raise StandInError('"interval_ms" must be an integer >= 0 (0 stops)')
        AUTO_STEPPER.set(interval)
        return {"interval_ms": interval}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        try:
            if path.startswith("/_standin/"):
                return self.control(environ, start_response, path)
            if path.startswith("/2018-06-01/runtime/"):
                return self.runtime(environ, start_response, path)
            return self.aws(environ, start_response)
        except Exception as e:  # a bug in the stand-in: say so loudly, in JSON
            log("internal error:\n" + traceback.format_exc())
            return json_response(start_response, 500, {"error": f"stand-in internal error: {e!r}"})

    def control(self, environ: dict[str, Any], start_response: Any, path: str) -> Any:
        method = environ.get("REQUEST_METHOD", "GET")
        route = self.routes.get((method, path.rstrip("/")))
        if route is None:
            if any(p == path.rstrip("/") for (_, p) in self.routes):
                return json_response(start_response, 405, {"error": f"{method} not allowed on {path}"})
            return json_response(start_response, 404, {"error": f"no control endpoint {path}"})
        try:
            body = parse_json_body(read_body(environ)) if method in ("POST", "PUT", "DELETE") else {}
            return json_response(start_response, 200, route(body))
        except StandInError as e:
            return json_response(start_response, 400, {"error": str(e)})

    def runtime(self, environ: dict[str, Any], start_response: Any, path: str) -> Any:
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
            service, operation, _ = identify_request(environ, body)
            fault = CALLS.record(f"{service}:{operation}")
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

    # Tasks stay RUNNING until something stops them: moto otherwise advances a task's
    # lastStatus by itself on every DescribeTasks.
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**15})

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
    AUTO_STEPPER.set(0)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
