"""Auto Scaling lifecycle hooks and actions, and how instances report their state.

STAND-IN for what moto 5.2.5 lacks or misplays (each place is marked `STAND-IN:`):
  * PutLifecycleHook keeps NotificationTargetARN, RoleARN, NotificationMetadata and
    reports GlobalTimeout = min(172800, 100 x HeartbeatTimeout) (moto drops/hardcodes them).
  * Lifecycle actions: moto has none. `POST /_standin/lifecycle/start` plays what AWS does
    when an instance enters a hook's wait state: token, `Terminating:Wait` /
    `Pending:Wait`, and the notification (same JSON as AWS) to the hook's SNS topic or
    SQS queue. CompleteLifecycleAction and RecordLifecycleActionHeartbeat (HTTP 500 in
    moto) are implemented with AWS's `ValidationError: No active Lifecycle Action found
    with ...`. `POST /_standin/lifecycle/expire` ends an action as the heartbeat/global
    timeout would. `/lifecycle/test-notification` sends AWS's TEST_NOTIFICATION;
    `GET /_standin/lifecycle/actions` lists the actions.
  * Timeouts by the clock, opt-in (`POST /_standin/lifecycle/enforce {"enabled": true}`;
    off by default, so tests that hold an action without heartbeats are unaffected): an
    action whose last heartbeat (or start) is older than its hook's HeartbeatTimeout, or
    whose start is older than the hook's GlobalTimeout (min(172800, 100 x
    HeartbeatTimeout)), expires as AWS lets it: the hook's DefaultResult is applied and
    the instance moves on (`Terminating:Proceed`; a launch ABANDONed is a Cancelled
    activity with "Heartbeat Timeout"). Both timeouts are taken from the hook when the
    action starts. Checked lazily, never by a thread: before every lifecycle call
    (Complete, Heartbeat, a new action), whenever an instance's lifecycle state is
    reported (DescribeAutoScalingInstances / Groups) and on GET
    /_standin/lifecycle/actions; the action records when it expired (`completed_at` is
    the instant the timeout ran out, not when it was noticed) and `expired_by`
    ("heartbeat_timeout" / "global_timeout"; "expire" for the endpoint). Later heartbeats and completions answer
    AWS's `ValidationError: No active Lifecycle Action found ...`.
  * DescribeAutoScalingInstances / DescribeAutoScalingGroups report those states, and the
    launch template version each instance was launched from (moto reports the template's
    default version; the instance's aws:ec2launchtemplate:version tag likewise).
  * Instance lifecycle policies (late 2025; moto ignores them): Create/UpdateAutoScalingGroup
    keep `InstanceLifecyclePolicy.RetentionTriggers.TerminateHookAbandon`, DescribeAutoScaling
    Groups reports it, and a terminate action that ends ABANDON (completed, or expired with
    DefaultResult ABANDON) in a group whose policy says `retain` leaves the instance in
    `Terminating:Retained` instead of `Terminating:Proceed`, until
    TerminateInstanceInAutoScalingGroup. Not played: the replacement AWS launches when an
    instance is retained (moto launches one when the retained instance is terminated).

A launch hook's action that ends with ABANDON is recorded as a Cancelled scaling
activity (activities.py). Instance refresh (refresh.py) starts and waits on these
actions.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from moto.autoscaling import models as as_models
from moto.autoscaling import responses as as_responses
from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import autoscaling_backends
from moto.core.responses import ActionResult, EmptyResult
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

from .activities import ACTIVITIES
from .common import ACCOUNT_ID, DEFAULT_REGION, MOTO_LOCK, StandInError, iso_ms


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
        # The hook's timeouts when the action started (seconds); set by Lifecycle.start.
        self.heartbeat_timeout = 3600
        self.global_timeout = 172800
        self.expired_by: str | None = None

    def expiry(self) -> tuple[float, str]:
        """When the action runs out if nothing happens (epoch s), and which timeout it is."""
        last = self.heartbeats[-1] if self.heartbeats else self.started_at
        by_heartbeat = last + self.heartbeat_timeout
        by_global = self.started_at + self.global_timeout
        if by_global <= by_heartbeat:
            return by_global, "global_timeout"
        return by_heartbeat, "heartbeat_timeout"

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
            "heartbeat_timeout": self.heartbeat_timeout,
            "global_timeout": self.global_timeout,
            "expired_by": self.expired_by,
        }


class Lifecycle:
    """Lifecycle actions. All methods run under MOTO_LOCK."""

    def __init__(self) -> None:
        self.actions: list[LifecycleAction] = []
        # instance id -> LifecycleState the stand-in reports (overrides moto's InService)
        self.instance_states: dict[str, str] = {}
        # Apply the heartbeat / global timeouts by the clock (see the module docstring).
        self.enforce = False

    # ---- timeouts by the clock ----

    def set_enforce(self, body: dict[str, Any]) -> dict[str, Any]:
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise StandInError('"enabled" must be true or false')
        self.enforce_timeouts()  # what ran out while it was on stays expired
        self.enforce = enabled
        if enabled:
            self.enforce_timeouts()
        return {"enabled": self.enforce}

    def enforce_timeouts(self, now: float | None = None) -> None:
        """STAND-IN: Auto Scaling's heartbeat and global timeouts (when enforcement is on)."""
        if not self.enforce:
            return
        now = time.time() if now is None else now
        for action in self.actions:
            if action.state != "active":
                continue
            at, by = action.expiry()
            if now >= at:
                self._expire(action, by, at)

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
        self.enforce_timeouts()
        if any(a.instance_id == instance_id and a.state == "active" for a in self.actions):
            raise StandInError(f"instance {instance_id} already has an active lifecycle action")
        target = getattr(hook, "notification_target_arn", None)
        self._check_target(target)

        action = LifecycleAction(ACCOUNT_ID, region, asg_name, hook_name, instance_id, transition)
        action.heartbeat_timeout = int(hook.heartbeat_timeout or 3600)
        action.global_timeout = int(getattr(hook, "global_timeout", None) or min(172800, 100 * action.heartbeat_timeout))
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
        self.enforce_timeouts()
        action = next((a for a in self.actions if a.instance_id == instance_id and a.state == "active"), None)
        if action is None:
            raise StandInError(f"no active lifecycle action for instance {instance_id!r}")
        self._expire(action, "expire", time.time())
        return action.to_json()

    def _expire(self, action: LifecycleAction, by: str, at: float) -> None:
        # STAND-IN: the heartbeat/global timeout ran out; AWS applies the hook's DefaultResult.
        hook = autoscaling_backends[action.account_id][action.region].lifecycle_hooks.get(
            f"{action.asg}_{action.hook}"
        )
        default_result = getattr(hook, "default_result", None) or "ABANDON"
        action.state = "expired"
        action.result = default_result
        action.completed_at = at
        action.expired_by = by
        self.instance_states[action.instance_id] = self._after_state(
            action.transition, default_result, _retains(action.account_id, action.region, action.asg)
        )
        if action.transition == LAUNCHING and default_result == "ABANDON":
            ACTIVITIES.abandoned_launch(action, "Heartbeat Timeout")

    def list(self) -> list[dict[str, Any]]:
        self.enforce_timeouts()
        return [a.to_json() for a in self.actions]

    # ---- AWS API (called from the patched AutoScalingResponse) ----

    def complete(self, account_id: str, region: str, params: dict[str, Any]) -> None:
        self.enforce_timeouts()
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
        self.instance_states[action.instance_id] = self._after_state(
            action.transition, result, _retains(account_id, region, action.asg)
        )
        if action.transition == LAUNCHING and result == "ABANDON":
            ACTIVITIES.abandoned_launch(action, "Lifecycle Action Completed with ABANDON Result")

    def heartbeat(self, account_id: str, region: str, params: dict[str, Any]) -> None:
        self.enforce_timeouts()
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
    def _after_state(transition: str, result: str, retains: bool = False) -> str:
        if transition == LAUNCHING:
            return "Pending:Proceed" if result == "CONTINUE" else "Terminating"
        if result == "ABANDON" and retains:
            # STAND-IN: the group's instance lifecycle policy keeps the instance.
            return "Terminating:Retained"
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
            # stand-in Lambda subscriptions (awslambda.py) fire.
            sns_backends[account][region].publish(message, arn=target, subject=subject)
            return target
        if service == "sqs":
            sqs_backends[account][region].send_message(parts[5], message)
            return target
        return None


LIFECYCLE = Lifecycle()


# ---- instance lifecycle policies (STAND-IN: moto ignores them) ----


def _retains(account_id: str, region: str, asg: str) -> bool:
    group = autoscaling_backends[account_id][region].autoscaling_groups.get(asg)
    policy = getattr(group, "standin_lifecycle_policy", None) or {}
    return (policy.get("RetentionTriggers") or {}).get("TerminateHookAbandon") == "retain"


def _keep_lifecycle_policy(self: Any) -> None:
    policy = self._get_params().get("InstanceLifecyclePolicy")
    if policy is None:
        return
    triggers = policy.get("RetentionTriggers") or {}
    value = triggers.get("TerminateHookAbandon")
    if value is not None and value not in ("retain", "terminate"):
        raise ValidationError(
            f"Invalid value for TerminateHookAbandon: {value}. Valid values are retain and terminate."
        )
    name = self._get_param("AutoScalingGroupName")
    with MOTO_LOCK:
        group = self.autoscaling_backend.autoscaling_groups.get(name)
        if group is not None:
            group.standin_lifecycle_policy = policy


_orig_create_group = as_responses.AutoScalingResponse.create_auto_scaling_group
_orig_update_group = as_responses.AutoScalingResponse.update_auto_scaling_group


def _create_auto_scaling_group(self: Any) -> ActionResult:
    result = _orig_create_group(self)
    _keep_lifecycle_policy(self)
    return result


def _update_auto_scaling_group(self: Any) -> ActionResult:
    result = _orig_update_group(self)
    _keep_lifecycle_policy(self)
    return result


def _group_lifecycle_policy(self: Any) -> dict[str, Any] | None:
    return getattr(self, "standin_lifecycle_policy", None)


as_responses.AutoScalingResponse.create_auto_scaling_group = _create_auto_scaling_group
as_responses.AutoScalingResponse.update_auto_scaling_group = _update_auto_scaling_group
as_models.FakeAutoScalingGroup.InstanceLifecyclePolicy = property(_group_lifecycle_policy)

_orig_terminate_instance = as_models.AutoScalingBackend.terminate_instance


def _terminate_instance(self: Any, instance_id: str, should_decrement: bool) -> Any:
    # STAND-IN: a retained instance leaves its Terminating:Retained state with it.
    result = _orig_terminate_instance(self, instance_id, should_decrement)
    LIFECYCLE.instance_states.pop(instance_id, None)
    return result


as_models.AutoScalingBackend.terminate_instance = _terminate_instance


def _instance_state_lifecycle_state(self: Any) -> str:
    # STAND-IN: the serializer reads `LifecycleState` before moto's `lifecycle_state`, so
    # the instance reports the lifecycle state the stand-in gave it; moto's own logic
    # (which counts `lifecycle_state == "InService"`) is left untouched. With enforcement
    # on, a timeout that ran out is applied first (the caller holds MOTO_LOCK: moto's
    # serializer runs inside the request).
    LIFECYCLE.enforce_timeouts()
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
