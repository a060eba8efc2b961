"""Auto Scaling instance refresh: StartInstanceRefresh, DescribeInstanceRefreshes,
CancelInstanceRefresh, RollbackInstanceRefresh, and `POST /_standin/refresh/step|fail`.

STAND-IN: moto 5.2.5 answers every instance refresh call with HTTP 500. Here the calls
keep AWS's rules and errors (InstanceRefreshInProgress, ActiveInstanceRefreshNotFound,
IrreversibleInstanceRefresh, ValidationError for AutoRollback without a desired
configuration or with a group or desired configuration on $Latest / $Default). No clock
drives a refresh: each `POST /_standin/refresh/step` plays one batch (Pending ->
InProgress; then launch the batch from the desired launch template version with moto's
own group launch, then take as many old instances out). Batch size is AWS's: the room
between MinHealthyPercentage and MaxHealthyPercentage of the desired capacity, at least
one. SkipMatching skips instances on the same launch template *and version* (as AWS; not
merely the same AMI); instances protected from scale in / in Standby are left alone
unless ScaleInProtectedInstances=Refresh / StandbyInstances=Terminate. On success the
group takes the desired configuration; BakeTime > 0 passes through Baking (one step). A
rollback replaces what the refresh launched with the group's own configuration.

A step may wait on the group's hooks (`launch_state` "Pending:Wait" / `terminate_state`
"Terminating:Wait": the lifecycle action starts and notifies as in `/lifecycle/start`,
see autoscaling.py; the batch goes on once the test completes the actions; an ABANDONed
launch is terminated and its old instance kept for a later batch). By default hooks are
not waited on. `POST /_standin/refresh/fail` fails the refresh (AutoRollback ->
RollbackInProgress). Launches and terminations are recorded as scaling activities
(activities.py).

Capacity (`POST /_standin/refresh/capacity`): EC2 refuses the group's next launches
for want of capacity or an account limit, as Auto Scaling records it (a Failed scaling
activity whose StatusMessage is EC2's wording: see activities.py); the batch launches
nothing on that step and Auto Scaling tries it again on the next one, as it retries
launches itself.

History (`POST /_standin/refresh/age`): DescribeInstanceRefreshes returns recent
history only (AWS keeps about six weeks: here, refreshes that ended more than
HISTORY_DAYS ago are left out). No clock ages it here: the endpoint moves a group's
refreshes back in time by a number of days (the stand-in's clock, compressed).

A look that straddles the end of a refresh (`POST /_standin/refresh/finish-on`): when
the n-th AWS call matching the given operations arrives, the group's refresh is played
to its end before moto answers that call (a test of reading order, not of AWS).

Not emulated: instance warmup, checkpoints and alarms (CheckpointPercentages,
CheckpointDelay and AlarmSpecification are kept and described, never acted on), the
ReplaceRootVolume strategy, MixedInstancesPolicy in a desired configuration, the
"Wait" choices of ScaleInProtectedInstances / StandbyInstances (treated as Ignore),
refusing UpdateAutoScalingGroup during a refresh.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

from moto.autoscaling import models as as_models
from moto.autoscaling import responses as as_responses
from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import autoscaling_backends
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2 import ec2_backends

from .activities import (
    ACTIVITIES,
    capacity_failure_message,
    capacity_launch_cause,
    refresh_launch_cause,
    refresh_terminate_cause,
)
from .autoscaling import LAUNCHING, LIFECYCLE, TERMINATING
from .common import (
    ACCOUNT_ID,
    DEFAULT_REGION,
    MOTO_LOCK,
    StandInError,
    as_params,
    group_member,
    json_times,
    page_records,
)


ACTIVE_REFRESH = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
# How long AWS keeps an ended refresh in DescribeInstanceRefreshes (about six weeks).
HISTORY_DAYS = 42
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
        # group -> (capacity failures still to come, EC2's error code)
        self.capacity: dict[str, tuple[int, str]] = {}
        # [{"group", "calls", "nth"}]: play the refresh to its end on the nth matching call
        self.finish_on_calls: list[dict[str, Any]] = []

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
        kept_from = utcnow() - dt.timedelta(days=HISTORY_DAYS)
        found = [r for r in reversed(self._for_group(account_id, region, name))
                 if (not ids or r.id in ids) and (r.end_time is None or r.end_time >= kept_from)]
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
        LIFECYCLE.enforce_timeouts()  # a timed-out action ends its wait first (when enforced)
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
                        if self._capacity_failure(ref, group, out):
                            pass  # nothing launched; the batch is tried again next step
                        else:
                            self._new_batch(ref, group, victims, hooks, out)
                            self._advance(ref, backend, group, out)
                    if ref.batch is None and not ref.refill and not self._victims(ref, group):
                        self._finish(ref, group)
        self._progress(ref, group)
        return {"status": ref.status, "launched": out["launched"], "terminated": out["terminated"],
                "waiting": out["waiting"], "percentage": ref.percentage, "instance_refresh_id": ref.id,
                "capacity_failed": out.get("capacity_failed", 0)}

    # ---- capacity, history, reading order ----

    def _capacity_failure(self, ref: InstanceRefresh, group: Any, out: dict[str, Any]) -> bool:
        """A launch EC2 refuses for capacity (set by `/_standin/refresh/capacity`):
        recorded as Auto Scaling records it; True when this step's launch failed."""
        left, code = self.capacity.get(group.name, (0, ""))
        if left <= 0:
            return False
        self.capacity[group.name] = (left - 1, code)
        template, number = ref.rollback_target if ref.status == "RollbackInProgress" else ref.target
        instance_type = template.get_version(number).data.get("InstanceType") or "m5.large"
        zone = (group.availability_zones or ["us-east-1a"])[0]
        message = capacity_failure_message(code, instance_type, zone)
        ACTIVITIES.record(ref.account_id, ref.region, group.name, "Failed",
                          f"Launching a new EC2 instance.  Status Reason: {message}",
                          refresh_launch_cause(utcnow()), message)
        out["capacity_failed"] = out.get("capacity_failed", 0) + 1
        return True

    def set_capacity(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /_standin/refresh/capacity` {"group", "failures", "code"?}: EC2 refuses the
        group's next `failures` launches with `code` (InsufficientInstanceCapacity by
        default; see activities.CAPACITY_FAILURES for the others)."""
        name, failures = body.get("group"), body.get("failures")
        code = body.get("code", "InsufficientInstanceCapacity")
        if not isinstance(name, str) or name not in autoscaling_backends[ACCOUNT_ID][
                body.get("region", DEFAULT_REGION)].autoscaling_groups:
            raise StandInError('"group" must name an Auto Scaling group')
        if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
            raise StandInError('"failures" must be an integer >= 0')
        capacity_failure_message(code, "m5.large", "us-east-1a")  # refuses an unknown code
        self.capacity[name] = (failures, code)
        return {"group": name, "failures": failures, "code": code}

    def age(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /_standin/refresh/age` {"group", "days"}: the group's refreshes started
        and ended `days` earlier (the stand-in's clock, compressed); those that ended
        more than HISTORY_DAYS ago are then no longer described."""
        days = body.get("days")
        if not isinstance(days, (int, float)) or isinstance(days, bool) or days <= 0:
            raise StandInError('"days" must be a number > 0')
        _, _, _ = self._control_target(body)
        shift = dt.timedelta(days=days)
        refs = self._for_group(ACCOUNT_ID, body.get("region", DEFAULT_REGION), body["group"])
        for ref in refs:
            if ref.status in ACTIVE_REFRESH:
                raise StandInError(f"refresh {ref.id} is still {ref.status}: only ended ones age")
        for ref in refs:
            ref.start_time -= shift
            if ref.end_time is not None:
                ref.end_time -= shift
        return {"aged": len(refs)}

    def finish_on(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /_standin/refresh/finish-on` {"group", "calls": ["autoscaling:Op", ...],
        "nth"}: when the nth AWS call matching one of `calls` arrives, the group's refresh
        is played to its end before moto answers it."""
        calls, nth = body.get("calls"), body.get("nth", 1)
        if not isinstance(calls, list) or not calls or not all(isinstance(c, str) and ":" in c for c in calls):
            raise StandInError('"calls" must be a list of "<service>:<Operation>"')
        if not isinstance(nth, int) or isinstance(nth, bool) or nth < 1:
            raise StandInError('"nth" must be an integer >= 1')
        _, _, ref = self._control_target(body)
        if ref.status not in ACTIVE_REFRESH:
            raise StandInError(f"the group's latest refresh is {ref.status}: nothing to finish")
        self.finish_on_calls.append({"group": body["group"], "calls": calls, "left": nth,
                                     "region": body.get("region", DEFAULT_REGION)})
        return {"group": body["group"], "calls": calls, "nth": nth}

    def on_call(self, key: str) -> None:
        """Called for every AWS request (app.py), before moto answers it."""
        for trigger in list(self.finish_on_calls):
            if key not in trigger["calls"]:
                continue
            trigger["left"] -= 1
            if trigger["left"] > 0:
                continue
            self.finish_on_calls.remove(trigger)
            for _ in range(1000):
                if self.step({"group": trigger["group"], "region": trigger["region"]})["status"] \
                        not in ACTIVE_REFRESH:
                    break

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
            member = group_member(group, iid)
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
            member = group_member(group, iid)
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
            member = group_member(group, iid)
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
            member = group_member(group, iid)
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
            present = sum(1 for iid in ref.deployed if group_member(group, iid) is not None)
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


def _start_instance_refresh(self: Any) -> ActionResult:
    params = as_params(self, "AutoScalingGroupName", "Strategy", "DesiredConfiguration", "Preferences")
    with MOTO_LOCK:
        return ActionResult({"InstanceRefreshId": REFRESHES.start(self.current_account, self.region, params)})


def _describe_instance_refreshes(self: Any) -> ActionResult:
    params = as_params(self, "AutoScalingGroupName", "InstanceRefreshIds", "MaxRecords", "NextToken")
    with MOTO_LOCK:
        return ActionResult(REFRESHES.describe(self.current_account, self.region, params))


def _cancel_instance_refresh(self: Any) -> ActionResult:
    params = as_params(self, "AutoScalingGroupName")
    with MOTO_LOCK:
        return ActionResult({"InstanceRefreshId": REFRESHES.cancel(self.current_account, self.region, params)})


def _rollback_instance_refresh(self: Any) -> ActionResult:
    params = as_params(self, "AutoScalingGroupName")
    with MOTO_LOCK:
        return ActionResult({"InstanceRefreshId": REFRESHES.rollback_api(self.current_account, self.region, params)})


as_responses.AutoScalingResponse.start_instance_refresh = _start_instance_refresh
as_responses.AutoScalingResponse.describe_instance_refreshes = _describe_instance_refreshes
as_responses.AutoScalingResponse.cancel_instance_refresh = _cancel_instance_refresh
as_responses.AutoScalingResponse.rollback_instance_refresh = _rollback_instance_refresh
