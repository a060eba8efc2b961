"""Auto Scaling scaling activities: DescribeScalingActivities and `POST /_standin/activity`.

STAND-IN: moto 5.2.5 records no scaling activities; its DescribeScalingActivities always
answers an empty list. Here it lists what the stand-in recorded, newest first, paged by
MaxRecords/NextToken: a launch ABANDONed by a launch hook (Cancelled, AWS's StatusMessage
"Instance failed to complete user's Lifecycle Action: Lifecycle Action with token <t> was
abandoned: Lifecycle Action Completed with ABANDON Result", or "...: Heartbeat Timeout"
after `/lifecycle/expire`; recorded from autoscaling.py), a refresh's launches and
terminations (Successful, AWS's Cause wording; recorded from refresh.py), a launch EC2
refused for capacity or a limit (Failed, EC2's StatusMessage; recorded from refresh.py
after `/_standin/refresh/capacity`), and what a test posts to `POST /_standin/activity`.
The Cause and capacity wordings live here.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from moto.autoscaling import responses as as_responses
from moto.autoscaling.models import autoscaling_backends
from moto.core.responses import ActionResult
from moto.core.utils import utcnow

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


def activity_time(d: dt.datetime) -> str:
    """The timestamp inside an activity's Cause, e.g. 2026-11-22T05:01:02Z."""
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def capacity_launch_cause(group: Any, at: dt.datetime) -> str:
    desired = group.desired_capacity or 0
    return (
        f"At {activity_time(at)} an instance was started in response to a difference between desired "
        f"and actual capacity, increasing the capacity from {max(desired - 1, 0)} to {desired}."
    )


def refresh_launch_cause(at: dt.datetime) -> str:
    return f"At {activity_time(at)} an instance was launched in response to an instance refresh."


# EC2's wording when it refuses a launch for capacity or a limit, as a failed launch
# activity's StatusMessage carries it (the Auto Scaling troubleshooting guide's
# messages; instance type and zone filled in).
CAPACITY_FAILURES = {
    "InsufficientInstanceCapacity": (
        "We currently do not have sufficient {type} capacity in the Availability Zone you requested "
        "({zone}). Our system will be working on provisioning additional capacity. You can currently get "
        "{type} capacity by not specifying an Availability Zone in your request or choosing other zones. "
        "Launching EC2 instance failed."
    ),
    "SpotCapacity": (
        "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity "
        "available that matches your request. Launching EC2 instance failed."
    ),
    "VcpuLimitExceeded": (
        "You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance "
        "bucket that the specified instance type belongs to. Please visit "
        "http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit. "
        "Launching EC2 instance failed."
    ),
    "InstanceLimitExceeded": (
        "Your quota allows for 0 more running instance(s). You requested at least 1. "
        "Launching EC2 instance failed."
    ),
}


def capacity_failure_message(code: str, instance_type: str, zone: str) -> str:
    wording = CAPACITY_FAILURES.get(code)
    if wording is None:
        raise StandInError(f'"code" must be one of {", ".join(CAPACITY_FAILURES)}')
    return wording.format(type=instance_type, zone=zone)


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
        member = group_member(group, action.instance_id) if group is not None else None
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


def _describe_scaling_activities(self: Any) -> ActionResult:
    params = as_params(self, "AutoScalingGroupName", "ActivityIds", "MaxRecords", "NextToken")
    with MOTO_LOCK:
        return ActionResult(ACTIVITIES.describe(self.current_account, self.region, params))


as_responses.AutoScalingResponse.describe_scaling_activities = _describe_scaling_activities
