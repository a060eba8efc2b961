#!/usr/bin/env python3
"""End-to-end self-check of tests/standin/standin.py with boto3 (exit 1 on any failure).

    .venv/bin/python tests/standin/selfcheck.py

Starts the stand-in with a piped stdin (as the Rust tests do), drives it through boto3,
the control endpoints and a fake Lambda runtime client, then closes stdin and checks
that the stand-in exits.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
FAILURES: list[str] = []


def check(cond: bool, what: str) -> None:
    if cond:
        print(f"ok   {what}")
    else:
        print(f"FAIL {what}")
        FAILURES.append(what)


def eq(actual, expected, what: str) -> None:
    check(actual == expected, f"{what}: {actual!r}" + ("" if actual == expected else f" != {expected!r}"))


class StandIn:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "standin.py"), "--port", "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("STANDIN_READY "):
            raise SystemExit(f"stand-in did not start: {line!r}")
        self.url = line.split(" ", 1)[1]
        self.hostport = self.url.split("//", 1)[1]

    def call(self, method: str, path: str, body=None, timeout: float = 30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def client(self, service: str, retries: int = 3):
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
            config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": retries}),
        )


def err_code(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message"), \
            e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, None, None


def err_full(fn, *args, **kwargs):
    """(code, message, status, content type) of a ClientError, or Nones."""
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        meta = e.response["ResponseMetadata"]
        return (e.response["Error"]["Code"], e.response["Error"].get("Message"), meta["HTTPStatusCode"],
                meta.get("HTTPHeaders", {}).get("content-type"))
    return None, None, None, None


def runtime_next(hostport: str, timeout: float = 10):
    conn = http.client.HTTPConnection(hostport, timeout=timeout)
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = json.loads(r.read())
    headers = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return headers, body


def runtime_post(hostport: str, request_id: str, kind: str, payload) -> int:
    conn = http.client.HTTPConnection(hostport, timeout=10)
    conn.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/{kind}", body=json.dumps(payload),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    conn.close()
    return r.status


NEW_AMI = "ami-0a1b2c3d4e5f60718"
NEWER_AMI = "ami-0b2c3d4e5f6071829"


def group_view(asg_c, ec2, name: str):
    """{instance id: (launch template version, lifecycle state, EC2 image id)} and the group."""
    g = asg_c.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    ids = [i["InstanceId"] for i in g["Instances"]]
    images = {}
    if ids:
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
            for i in r["Instances"]:
                images[i["InstanceId"]] = i["ImageId"]
    return {i["InstanceId"]: (i["LaunchTemplate"]["Version"], i["LifecycleState"], images.get(i["InstanceId"]))
            for i in g["Instances"]}, g


def latest_refresh(asg_c, name: str):
    return asg_c.describe_instance_refreshes(AutoScalingGroupName=name)["InstanceRefreshes"][0]


def check_launch_templates(ec2, ami: str) -> None:
    user_data = "IyEvYmluL2Jhc2gKZWNobyBoaQ=="
    ec2.create_launch_template(LaunchTemplateName="lt-refresh", VersionDescription="base",
                               LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro", "KeyName": "k1",
                                                   "UserData": user_data})
    v2 = ec2.create_launch_template_version(LaunchTemplateName="lt-refresh", SourceVersion="1",
                                            VersionDescription="new AMI",
                                            LaunchTemplateData={"ImageId": NEW_AMI})["LaunchTemplateVersion"]
    eq((v2["VersionNumber"], v2["VersionDescription"], v2["LaunchTemplateData"]),
       (2, "new AMI", {"ImageId": NEW_AMI, "InstanceType": "t3.micro", "KeyName": "k1", "UserData": user_data}),
       "CreateLaunchTemplateVersion SourceVersion: source data, given keys override")
    v3 = ec2.create_launch_template_version(LaunchTemplateName="lt-refresh", VersionDescription="bare",
                                            LaunchTemplateData={"ImageId": NEWER_AMI,
                                                                "InstanceType": "t3.small"})["LaunchTemplateVersion"]
    eq(v3["LaunchTemplateData"], {"ImageId": NEWER_AMI, "InstanceType": "t3.small"},
       "without SourceVersion nothing is inherited")

    def versions(vs):
        return [(v["VersionNumber"], v.get("VersionDescription"), v["LaunchTemplateData"]["ImageId"]) for v in
                ec2.describe_launch_template_versions(LaunchTemplateName="lt-refresh", Versions=vs)[
                    "LaunchTemplateVersions"]]

    eq(versions(["$Latest"]), [(3, "bare", NEWER_AMI)], "DescribeLaunchTemplateVersions $Latest")
    eq(versions(["$Default"]), [(1, "base", ami)], "DescribeLaunchTemplateVersions $Default")
    eq(versions(["2"]), [(2, "new AMI", NEW_AMI)], "DescribeLaunchTemplateVersions by number")
    eq(err_code(ec2.describe_launch_template_versions, LaunchTemplateName="lt-refresh", Versions=["0"])[0],
       "InvalidLaunchTemplateId.VersionNotFound", "version 0 does not exist")


def check_instance_refresh(s, ec2, asg_c, sqs, ami: str) -> None:
    def group(name: str, capacity: int, version: str = "1") -> None:
        asg_c.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=10,
                                        DesiredCapacity=capacity, AvailabilityZones=["us-east-1a"],
                                        LaunchTemplate={"LaunchTemplateName": "lt-refresh", "Version": version})

    def step(name: str, **extra):
        st, res = s.call("POST", "/_standin/refresh/step", dict(group=name, **extra))
        if st != 200:
            check(False, f"refresh step {name}: {st} {res}")
        return res

    v2 = {"LaunchTemplate": {"LaunchTemplateName": "lt-refresh", "Version": "2"}}
    v3 = {"LaunchTemplate": {"LaunchTemplateName": "lt-refresh", "Version": "3"}}

    # -- refusals
    code, message, status = err_code(asg_c.start_instance_refresh, AutoScalingGroupName="nope")
    eq((code, message, status),
       ("ValidationError", "AutoScalingGroup name not found - AutoScalingGroup 'nope' not found", 400),
       "StartInstanceRefresh unknown group")
    group("rf-ok", 3)
    code, message, _ = err_code(asg_c.start_instance_refresh, AutoScalingGroupName="rf-ok",
                                Preferences={"AutoRollback": True})
    eq((code, message), ("ValidationError", "The request isn't valid. The AutoRollback parameter cannot be set to true "
                         "when the DesiredConfiguration parameter is empty. Set AutoRollback to false or specify a "
                         "desired configuration and try again."), "AutoRollback without DesiredConfiguration")
    code, _, _ = err_code(asg_c.start_instance_refresh, AutoScalingGroupName="rf-ok",
                          DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateName": "lt-refresh",
                                                                   "Version": "$Latest"}},
                          Preferences={"AutoRollback": True})
    eq(code, "ValidationError", "AutoRollback to $Latest refused")
    code, _, _ = err_code(asg_c.start_instance_refresh, AutoScalingGroupName="rf-ok",
                          Preferences={"MinHealthyPercentage": 50, "MaxHealthyPercentage": 200})
    eq(code, "ValidationError", "MaxHealthyPercentage - MinHealthyPercentage > 100 refused")
    eq(err_code(asg_c.describe_instance_refreshes, AutoScalingGroupName="nope")[0], "ValidationError",
       "DescribeInstanceRefreshes unknown group")
    eq(asg_c.describe_instance_refreshes(AutoScalingGroupName="rf-ok")["InstanceRefreshes"], [],
       "no refresh yet")

    # -- a refresh to version 2 (new AMI), one instance per batch, to Successful
    old_ids = set(group_view(asg_c, ec2, "rf-ok")[0])
    rid = asg_c.start_instance_refresh(AutoScalingGroupName="rf-ok", DesiredConfiguration=v2,
                                       Preferences={"SkipMatching": True, "MinHealthyPercentage": 100,
                                                    "InstanceWarmup": 0})["InstanceRefreshId"]
    check(len(rid) == 36, f"InstanceRefreshId is a uuid: {rid}")
    code, message, status = err_code(asg_c.start_instance_refresh, AutoScalingGroupName="rf-ok",
                                     DesiredConfiguration=v2)
    eq((code, message, status), ("InstanceRefreshInProgress", "An Instance Refresh is already in progress and blocks "
                                 "the execution of this Instance Refresh.", 400), "second StartInstanceRefresh refused")
    r = latest_refresh(asg_c, "rf-ok")
    eq((r["InstanceRefreshId"], r["Status"], r["InstancesToUpdate"], r["PercentageComplete"],
        r["DesiredConfiguration"], r["Preferences"]["SkipMatching"], r["Preferences"]["MinHealthyPercentage"],
        r["Preferences"]["InstanceWarmup"], "EndTime" in r),
       (rid, "Pending", 3, 0, v2, True, 100, 0, False), "DescribeInstanceRefreshes: Pending")
    res = step("rf-ok")
    eq((res["status"], res["launched"], res["terminated"]), ("InProgress", [], []), "step: Pending -> InProgress")
    progress = []
    for _ in range(3):
        res = step("rf-ok")
        progress.append((res["status"], len(res["launched"]), len(res["terminated"]), res["percentage"]))
        if res["status"] == "InProgress":
            r = latest_refresh(asg_c, "rf-ok")
            check((r["PercentageComplete"], r["InstancesToUpdate"]) == (res["percentage"], 3 - len(progress)),
                  f"DescribeInstanceRefreshes follows the step: {r['PercentageComplete']} {r['InstancesToUpdate']}")
    eq(progress, [("InProgress", 1, 1, 33), ("InProgress", 1, 1, 66), ("Successful", 1, 1, 100)],
       "one instance replaced per step, Successful with the last")
    r = latest_refresh(asg_c, "rf-ok")
    eq((r["Status"], r["PercentageComplete"], r["InstancesToUpdate"], "EndTime" in r),
       ("Successful", 100, 0, True), "refresh Successful")
    view, g = group_view(asg_c, ec2, "rf-ok")
    eq((g["DesiredCapacity"], g["LaunchTemplate"]["Version"], sorted(view.values())),
       (3, "2", [("2", "InService", NEW_AMI)] * 3),
       "group on version 2, capacity unchanged, every instance on the new AMI")
    eq(set(view) & old_ids, set(), "no old instance left")
    states = {i["InstanceId"]: i["State"]["Name"] for r_ in ec2.describe_instances(InstanceIds=sorted(old_ids))[
        "Reservations"] for i in r_["Instances"]}
    eq(set(states.values()), {"terminated"}, "EC2 terminated the old instances")
    eq({i["InstanceId"]: i["LaunchTemplate"]["Version"] for i in
        asg_c.describe_auto_scaling_instances(InstanceIds=sorted(view))["AutoScalingInstances"]},
       {i: "2" for i in view}, "DescribeAutoScalingInstances agrees")
    tags = {t["Key"]: t["Value"] for t in ec2.describe_tags(Filters=[{"Name": "resource-id",
                                                                    "Values": [sorted(view)[0]]}])["Tags"]}
    eq(tags.get("aws:ec2launchtemplate:version"), "2", "instance tagged with its launch template version")
    eq(step("rf-ok")["status"], "Successful", "step after the end changes nothing")
    # skip matching: nothing to replace -> Successful without a launch
    rid2 = asg_c.start_instance_refresh(AutoScalingGroupName="rf-ok", DesiredConfiguration=v2,
                                        Preferences={"SkipMatching": True})["InstanceRefreshId"]
    eq(latest_refresh(asg_c, "rf-ok")["InstancesToUpdate"], 0, "skip matching: nothing to update")
    step("rf-ok")
    res = step("rf-ok")
    eq((res["status"], res["launched"]), ("Successful", []), "skip matching: Successful at once")
    listed = asg_c.describe_instance_refreshes(AutoScalingGroupName="rf-ok")["InstanceRefreshes"]
    eq([x["InstanceRefreshId"] for x in listed], [rid2, rid], "DescribeInstanceRefreshes newest first")
    page = asg_c.describe_instance_refreshes(AutoScalingGroupName="rf-ok", MaxRecords=1)
    page2 = asg_c.describe_instance_refreshes(AutoScalingGroupName="rf-ok", MaxRecords=1, NextToken=page["NextToken"])
    eq(([x["InstanceRefreshId"] for x in page["InstanceRefreshes"] + page2["InstanceRefreshes"]],
        "NextToken" in page2), ([rid2, rid], False), "DescribeInstanceRefreshes pages")
    eq([x["InstanceRefreshId"] for x in asg_c.describe_instance_refreshes(
        AutoScalingGroupName="rf-ok", InstanceRefreshIds=[rid])["InstanceRefreshes"]], [rid], "InstanceRefreshIds")

    # -- no desired configuration, MinHealthyPercentage 50 of 4: two per batch; not reversible
    group("rf-batch", 4)
    asg_c.start_instance_refresh(AutoScalingGroupName="rf-batch", Preferences={"MinHealthyPercentage": 50})
    code, message, _ = err_code(asg_c.rollback_instance_refresh, AutoScalingGroupName="rf-batch")
    eq(code, "IrreversibleInstanceRefresh", "RollbackInstanceRefresh without a desired configuration")
    step("rf-batch")
    res1, res2 = step("rf-batch"), step("rf-batch")
    eq([(len(x["launched"]), len(x["terminated"]), x["status"]) for x in (res1, res2)],
       [(2, 2, "InProgress"), (2, 2, "Successful")], "batch of two (MinHealthyPercentage 50)")
    view, g = group_view(asg_c, ec2, "rf-batch")
    eq((len(view), g["LaunchTemplate"]["Version"], {v[0] for v in view.values()}), (4, "1", {"1"}),
       "without a desired configuration the group keeps its launch template")

    # -- failure without AutoRollback
    group("rf-fail", 2)
    asg_c.start_instance_refresh(AutoScalingGroupName="rf-fail", DesiredConfiguration=v2)
    step("rf-fail")
    step("rf-fail")
    st, failed = s.call("POST", "/_standin/refresh/fail",
                        {"group": "rf-fail", "reason": "Instances failed health checks"})
    eq((st, failed["Status"]), (200, "Failed"), "refresh/fail -> Failed")
    r = latest_refresh(asg_c, "rf-fail")
    eq((r["Status"], r["StatusReason"], r["PercentageComplete"], "EndTime" in r, "RollbackDetails" in r),
       ("Failed", "Instances failed health checks", 50, True, False), "Failed with the reason")
    eq(err_code(asg_c.rollback_instance_refresh, AutoScalingGroupName="rf-fail")[:2],
       ("ActiveInstanceRefreshNotFound", "No in progress or pending Instance Refresh found for Auto Scaling group "
                                         "rf-fail"), "RollbackInstanceRefresh with none active")
    eq(err_code(asg_c.cancel_instance_refresh, AutoScalingGroupName="rf-fail")[0], "ActiveInstanceRefreshNotFound",
       "CancelInstanceRefresh with none active")
    eq(sorted(v[0] for v in group_view(asg_c, ec2, "rf-fail")[0].values()), ["1", "2"],
       "a failed refresh leaves what it replaced")

    # -- failure with AutoRollback -> RollbackInProgress -> RollbackSuccessful
    group("rf-auto", 2)
    code, _, _ = err_code(asg_c.start_instance_refresh, AutoScalingGroupName="rf-ok", DesiredConfiguration=v3,
                          Preferences={"AutoRollback": True})
    eq(code, None, "AutoRollback with numbered versions accepted")
    asg_c.cancel_instance_refresh(AutoScalingGroupName="rf-ok")
    step("rf-ok")
    asg_c.start_instance_refresh(AutoScalingGroupName="rf-auto", DesiredConfiguration=v2,
                                 Preferences={"AutoRollback": True, "SkipMatching": True})
    step("rf-auto")
    step("rf-auto")
    st, rolled = s.call("POST", "/_standin/refresh/fail", {"group": "rf-auto", "reason": "alarm went off"})
    eq((st, rolled["Status"]), (200, "RollbackInProgress"), "refresh/fail with AutoRollback -> RollbackInProgress")
    r = latest_refresh(asg_c, "rf-auto")
    d = r["RollbackDetails"]
    eq((r["Status"], d["RollbackReason"], d["PercentageCompleteOnRollback"], d["InstancesToUpdateOnRollback"],
        "RollbackStartTime" in d), ("RollbackInProgress", "alarm went off", 50, 1, True), "RollbackDetails")
    res = step("rf-auto")
    eq((res["status"], len(res["launched"]), len(res["terminated"]), res["percentage"]),
       ("RollbackSuccessful", 1, 1, 0), "rollback replaces what the refresh launched")
    view, g = group_view(asg_c, ec2, "rf-auto")
    eq((g["LaunchTemplate"]["Version"], sorted(view.values())), ("1", [("1", "InService", ami)] * 2),
       "rolled back: group and instances on version 1")
    eq("EndTime" in latest_refresh(asg_c, "rf-auto"), True, "RollbackSuccessful has an EndTime")

    # -- manual rollback; a group on $Latest cannot be rolled back
    group("rf-manual", 2)
    rid = asg_c.start_instance_refresh(AutoScalingGroupName="rf-manual", DesiredConfiguration=v2)["InstanceRefreshId"]
    step("rf-manual")
    step("rf-manual")
    eq(asg_c.rollback_instance_refresh(AutoScalingGroupName="rf-manual")["InstanceRefreshId"], rid,
       "RollbackInstanceRefresh returns the refresh's id")
    r = latest_refresh(asg_c, "rf-manual")
    eq((r["Status"], r["RollbackDetails"]["PercentageCompleteOnRollback"]), ("RollbackInProgress", 50),
       "manual rollback in progress")
    eq(step("rf-manual")["status"], "RollbackSuccessful", "manual rollback -> RollbackSuccessful")
    eq(sorted(v[0] for v in group_view(asg_c, ec2, "rf-manual")[0].values()), ["1", "1"], "back on version 1")
    group("rf-latest", 1, version="$Latest")
    asg_c.start_instance_refresh(AutoScalingGroupName="rf-latest", DesiredConfiguration=v2)
    eq(err_code(asg_c.rollback_instance_refresh, AutoScalingGroupName="rf-latest")[0], "IrreversibleInstanceRefresh",
       "no rollback of a group on $Latest")
    code, _, _ = err_code(asg_c.start_instance_refresh, AutoScalingGroupName="rf-manual", DesiredConfiguration=v2,
                          Preferences={"AutoRollback": True})
    eq(code, None, "AutoRollback from a numbered group version accepted")
    asg_c.cancel_instance_refresh(AutoScalingGroupName="rf-manual")

    # -- cancel
    group("rf-cancel", 2)
    rid = asg_c.start_instance_refresh(AutoScalingGroupName="rf-cancel", DesiredConfiguration=v2)["InstanceRefreshId"]
    step("rf-cancel")
    eq(asg_c.cancel_instance_refresh(AutoScalingGroupName="rf-cancel")["InstanceRefreshId"], rid,
       "CancelInstanceRefresh returns the id")
    eq(latest_refresh(asg_c, "rf-cancel")["Status"], "Cancelling", "Cancelling")
    res = step("rf-cancel")
    eq((res["status"], res["launched"]), ("Cancelled", []), "step: Cancelling -> Cancelled")
    eq("EndTime" in latest_refresh(asg_c, "rf-cancel"), True, "Cancelled has an EndTime")
    code, _, _ = err_code(asg_c.start_instance_refresh, AutoScalingGroupName="rf-cancel", DesiredConfiguration=v2)
    eq(code, None, "a new refresh may start after a cancelled one")

    # -- batches that wait on the group's lifecycle hooks; an ABANDONed launch
    queue_url = sqs.create_queue(QueueName="refresh-hooks")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    group("rf-hooks", 1)
    for hook, transition in (("verify", "autoscaling:EC2_INSTANCE_LAUNCHING"),
                             ("drain", "autoscaling:EC2_INSTANCE_TERMINATING")):
        asg_c.put_lifecycle_hook(AutoScalingGroupName="rf-hooks", LifecycleHookName=hook,
                                 LifecycleTransition=transition, NotificationTargetARN=queue_arn,
                                 RoleARN="arn:aws:iam::123456789012:role/hook", HeartbeatTimeout=300)
    (old,) = group_view(asg_c, ec2, "rf-hooks")[0]
    asg_c.start_instance_refresh(AutoScalingGroupName="rf-hooks", DesiredConfiguration=v2)
    step("rf-hooks")
    waits = {"launch_state": "Pending:Wait", "terminate_state": "Terminating:Wait"}
    res = step("rf-hooks", **waits)
    (n1,) = res["launched"]
    eq((res["waiting"], res["terminated"]), ([n1], []), "launch waits in Pending:Wait")
    eq(asg_c.describe_auto_scaling_instances(InstanceIds=[n1])["AutoScalingInstances"][0]["LifecycleState"],
       "Pending:Wait", "new instance Pending:Wait")
    msgs = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                                                 WaitTimeSeconds=1).get("Messages", [])]
    eq([(m["LifecycleTransition"], m["EC2InstanceId"]) for m in msgs],
       [("autoscaling:EC2_INSTANCE_LAUNCHING", n1)], "the launch hook was notified")
    token = msgs[0]["LifecycleActionToken"] if msgs else ""
    eq(step("rf-hooks", **waits)["waiting"], [n1], "step waits for the launch action")
    asg_c.complete_lifecycle_action(AutoScalingGroupName="rf-hooks", LifecycleHookName="verify",
                                    LifecycleActionResult="ABANDON", InstanceId=n1)
    res = step("rf-hooks", **waits)
    eq((res["status"], res["launched"], res["terminated"], res["waiting"]), ("InProgress", [], [n1], []),
       "an ABANDONed launch is terminated, the old instance stays")
    eq(set(group_view(asg_c, ec2, "rf-hooks")[0]), {old}, "group back to the old instance")
    res = step("rf-hooks", **waits)
    (n2,) = res["launched"]
    asg_c.complete_lifecycle_action(AutoScalingGroupName="rf-hooks", LifecycleHookName="verify",
                                    LifecycleActionResult="CONTINUE", InstanceId=n2)
    res = step("rf-hooks", **waits)
    eq((res["waiting"], res["terminated"]), ([old], []), "the old instance waits in Terminating:Wait")
    eq({i["InstanceId"]: i["LifecycleState"] for i in asg_c.describe_auto_scaling_instances(
        InstanceIds=[old, n2])["AutoScalingInstances"]}, {old: "Terminating:Wait", n2: "InService"},
       "lifecycle states while draining")
    asg_c.complete_lifecycle_action(AutoScalingGroupName="rf-hooks", LifecycleHookName="drain",
                                    LifecycleActionResult="CONTINUE", InstanceId=old)
    res = step("rf-hooks", **waits)
    eq((res["status"], res["terminated"]), ("Successful", [old]), "terminated after the hook: Successful")
    acts = asg_c.describe_scaling_activities(AutoScalingGroupName="rf-hooks")["Activities"]
    eq([(a["StatusCode"], a["Description"]) for a in acts],
       [("Successful", f"Terminating EC2 instance: {old}"), ("Successful", f"Launching a new EC2 instance: {n2}"),
        ("Cancelled", f"Launching a new EC2 instance: {n1}")], "DescribeScalingActivities newest first")
    if len(acts) == 3:
        eq(acts[2].get("StatusMessage"),
           f"Instance failed to complete user's Lifecycle Action: Lifecycle Action with token {token} was abandoned: "
           "Lifecycle Action Completed with ABANDON Result", "abandoned launch StatusMessage (AWS's wording)")
        check(acts[2]["Cause"].endswith("an instance was launched in response to an instance refresh.")
              and acts[0]["Cause"].endswith(f"instance {old} was selected for termination."), "activity causes")
        eq((acts[0]["Progress"], "EndTime" in acts[0], json.loads(acts[0]["Details"])["Availability Zone"]),
           (100, True, "us-east-1a"), "activity progress, end, details")
    # a refresh-launched instance ABANDONed after its batch: terminated, its capacity launched again
    for name, rollback in (("rf-orphan", True), ("rf-orphan2", False)):
        group(name, 2)
        asg_c.put_lifecycle_hook(AutoScalingGroupName=name, LifecycleHookName="verify",
                                 LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                                 NotificationTargetARN=queue_arn, RoleARN="arn:aws:iam::123456789012:role/hook")
        asg_c.start_instance_refresh(AutoScalingGroupName=name, DesiredConfiguration=v2)
        step(name)
        (orphan,) = step(name)["launched"]
        s.call("POST", "/_standin/lifecycle/start", {"asg": name, "hook": "verify", "instance_id": orphan,
                                                     "transition": "autoscaling:EC2_INSTANCE_LAUNCHING"})
        asg_c.complete_lifecycle_action(AutoScalingGroupName=name, LifecycleHookName="verify",
                                        LifecycleActionResult="ABANDON", InstanceId=orphan)
        if rollback:
            asg_c.rollback_instance_refresh(AutoScalingGroupName=name)
        res = step(name)
        view, g = group_view(asg_c, ec2, name)
        if rollback:
            eq((res["status"], res["terminated"], len(res["launched"]), sorted(v[0] for v in view.values())),
               ("RollbackSuccessful", [orphan], 1, ["1", "1"]),
               "orphan during rollback: terminated, replaced from the group's version")
        else:
            eq((res["status"], res["terminated"][0], len(res["terminated"]), len(res["launched"]),
                sorted(v[0] for v in view.values())), ("Successful", orphan, 2, 2, ["2", "2"]),
               "orphan during the refresh: terminated, launched again with the next batch")
        eq((g["DesiredCapacity"], len(view)), (2, 2), f"{name}: capacity kept")
    sqs.purge_queue(QueueUrl=queue_url)

    # a launch action that times out with ABANDON
    s.call("POST", "/_standin/lifecycle/start", {"asg": "rf-hooks", "hook": "verify", "instance_id": n2,
                                                 "transition": "autoscaling:EC2_INSTANCE_LAUNCHING"})
    s.call("POST", "/_standin/lifecycle/expire", {"instance_id": n2})
    newest = asg_c.describe_scaling_activities(AutoScalingGroupName="rf-hooks", MaxRecords=1)
    check(newest["Activities"][0]["StatusMessage"].endswith("was abandoned: Heartbeat Timeout")
          and "NextToken" in newest, "expired launch action -> Cancelled activity; MaxRecords pages")
    st, posted = s.call("POST", "/_standin/activity", {"group": "rf-hooks", "status_code": "Failed",
                                                       "description": "Launching a new EC2 instance.  Status Reason: x",
                                                       "status_message": "We currently do not have sufficient "
                                                                         "capacity"})
    eq((st, posted["StatusCode"]), (200, "Failed"), "POST activity")
    got = asg_c.describe_scaling_activities(ActivityIds=[posted["ActivityId"]])["Activities"]
    eq([(a["AutoScalingGroupName"], a["StatusMessage"]) for a in got],
       [("rf-hooks", "We currently do not have sufficient capacity")], "posted activity listed")
    eq(s.call("POST", "/_standin/activity", {"group": "rf-hooks", "status_code": "Meh", "description": "x"})[0], 400,
       "bad status_code -> 400")
    eq(s.call("POST", "/_standin/refresh/step", {"group": "asg"})[0], 400, "step without a refresh -> 400")
    check_capacity_history_and_reading_order(s, asg_c)


def check_capacity_history_and_reading_order(s, asg_c) -> None:
    """Launches refused for capacity, six weeks of history, a refresh finished on a call."""
    asg_c.create_auto_scaling_group(AutoScalingGroupName="rf-cap", MinSize=0, MaxSize=6, DesiredCapacity=2,
                                    AvailabilityZones=["us-east-1a"],
                                    LaunchTemplate={"LaunchTemplateName": "lt-refresh", "Version": "1"})
    v2 = {"LaunchTemplate": {"LaunchTemplateName": "lt-refresh", "Version": "2"}}
    prefs = {"MinHealthyPercentage": 100, "MaxHealthyPercentage": 150, "CheckpointPercentages": [50, 100],
             "CheckpointDelay": 60, "AlarmSpecification": {"Alarms": ["p99"]}}
    asg_c.start_instance_refresh(AutoScalingGroupName="rf-cap", DesiredConfiguration=v2, Preferences=prefs)
    p = latest_refresh(asg_c, "rf-cap")["Preferences"]
    eq((p.get("CheckpointPercentages"), p.get("CheckpointDelay"), p.get("AlarmSpecification")),
       ([50, 100], 60, {"Alarms": ["p99"]}), "checkpoints and alarms kept and described")
    eq(s.call("POST", "/_standin/refresh/capacity", {"group": "rf-cap", "failures": 1, "code": "Nope"})[0], 400,
       "unknown capacity code -> 400")
    eq(s.call("POST", "/_standin/refresh/capacity", {"group": "rf-cap", "failures": 1,
                                                     "code": "VcpuLimitExceeded"})[0], 200, "capacity failures set")
    s.call("POST", "/_standin/refresh/step", {"group": "rf-cap"})  # Pending -> InProgress
    st, res = s.call("POST", "/_standin/refresh/step", {"group": "rf-cap"})
    eq((st, res["capacity_failed"], res["launched"]), (200, 1, []), "a launch refused for capacity")
    failed = asg_c.describe_scaling_activities(AutoScalingGroupName="rf-cap", MaxRecords=1)["Activities"][0]
    check(failed["StatusCode"] == "Failed" and "vCPU capacity than your current vCPU limit" in failed["StatusMessage"]
          and failed["Description"].startswith("Launching a new EC2 instance.  Status Reason: "),
          "capacity failure recorded as Auto Scaling does")
    st, res = s.call("POST", "/_standin/refresh/step", {"group": "rf-cap"})
    eq((res["capacity_failed"], len(res["launched"])), (0, 1), "the next step launches")
    eq(s.call("POST", "/_standin/refresh/age", {"group": "rf-cap", "days": 43})[0], 400, "an active refresh does not age")
    st, res = s.call("POST", "/_standin/refresh/finish-on", {"group": "rf-cap",
                                                            "calls": ["autoscaling:DescribeAutoScalingGroups"]})
    eq(st, 200, "finish-on set")
    eq(latest_refresh(asg_c, "rf-cap")["Status"], "InProgress", "other calls do not finish it")
    asg_c.describe_auto_scaling_groups(AutoScalingGroupNames=["rf-cap"])
    eq(latest_refresh(asg_c, "rf-cap")["Status"], "Successful", "finished on the call")
    eq(s.call("POST", "/_standin/refresh/age", {"group": "rf-cap", "days": 41})[1], {"aged": 1}, "aged")
    eq(len(asg_c.describe_instance_refreshes(AutoScalingGroupName="rf-cap")["InstanceRefreshes"]), 1,
       "41 days old: still described")
    s.call("POST", "/_standin/refresh/age", {"group": "rf-cap", "days": 2})
    eq(asg_c.describe_instance_refreshes(AutoScalingGroupName="rf-cap")["InstanceRefreshes"], [],
       "43 days old: aged out")


def check_images(s, ec2, ami_instance: str) -> None:
    image = ec2.create_image(InstanceId=ami_instance, Name="selfcheck-image")["ImageId"]
    st, res = s.call("POST", "/_standin/ec2/image", {"image_id": image, "state": "pending",
                                                     "owner_id": "999988887777", "owner_alias": None,
                                                     "architecture": "arm64"})
    eq(st, 200, "set image")
    got = ec2.describe_images(ImageIds=[image])["Images"][0]
    eq((got["State"], got["OwnerId"], got.get("ImageOwnerAlias"), got["Architecture"]),
       ("pending", "999988887777", None, "arm64"), "DescribeImages reports what was set")
    for bad in ({"image_id": "ami-00000000"}, {"image_id": image, "state": "meh"},
                {"image_id": image, "owner_id": "x"}, {"image_id": image, "architecture": "sparc"}):
        eq(s.call("POST", "/_standin/ec2/image", bad)[0], 400, f"bad image request {bad}")


def check_fault_windows(s) -> None:
    """Faults for a time window (an outage), alone or with a count."""
    ecs1 = s.client("ecs", retries=1)
    st, fault = s.call("POST", "/_standin/faults", {"target": "ecs:*", "error": "ServiceUnavailable",
                                                    "status": 503, "for_ms": 1500})
    eq((st, fault["count"], fault["for_ms"], fault["message"], 0 < fault["remaining_ms"] <= 1500),
       (200, None, 1500, "Service Unavailable", True), "windowed fault: no count, 5xx default message")
    t_fault = time.time()
    got = [err_full(ecs1.list_clusters) for _ in range(3)] + [err_full(ecs1.describe_clusters, clusters=["c1"])]
    eq(got, [("ServiceUnavailable", "Service Unavailable", 503, "application/x-amz-json-1.1")] * 4,
       "every ECS call fails within the window, in JSON 1.1")
    left = s.call("GET", "/_standin/faults")[1]
    check(len(left) == 1 and 0 <= left[0]["remaining_ms"] <= 1500, f"GET faults: the window is left: {left}")
    time.sleep(max(0.0, t_fault + 1.6 - time.time()))
    eq((err_full(ecs1.list_clusters)[0], s.call("GET", "/_standin/faults")[1]), (None, []),
       "after the window: calls reach moto, the fault is gone")
    s.call("POST", "/_standin/faults", {"target": "ecs:ListClusters", "error": "ThrottlingException",
                                        "count": 1, "for_ms": 60000})
    eq([err_full(ecs1.list_clusters)[0] for _ in range(2)], ["ThrottlingException", None],
       "count and for_ms: ends when the count runs out")
    eq(s.call("GET", "/_standin/faults")[1], [], "count used up inside the window")
    for bad in ({"for_ms": 0}, {"for_ms": "5s"}, {"for_ms": 10, "count": 0}):
        eq(s.call("POST", "/_standin/faults", {"target": "ecs:*", "error": "X", **bad})[0], 400,
           f"bad fault {bad} -> 400")


def check_throttle(s, queue_url: str) -> None:
    """The account-wide token bucket."""
    ecs1 = s.client("ecs", retries=1)
    sqs1 = s.client("sqs", retries=1)
    st, bucket = s.call("POST", "/_standin/throttle", {"target": "ecs:*", "rate_per_s": 2, "burst": 3})
    eq((st, bucket["tokens"], bucket["granted"], bucket["throttled"]), (200, 3.0, 0, 0), "POST throttle: full bucket")
    t_start = time.time()
    results = [err_full(ecs1.list_clusters) for _ in range(8)]
    elapsed = time.time() - t_start
    granted = sum(1 for r in results if r[0] is None)
    # 3 from the burst, plus the refill (2/s) over the time the calls took.
    check(3 <= granted <= 3 + int(2 * elapsed) + 1, f"burst then throttled: {granted} of 8 in {elapsed:.2f}s")
    check(results[0][0] is None and results[1][0] is None and results[2][0] is None, "the burst is granted first")
    throttled = [r for r in results if r[0] is not None]
    eq(set(throttled), {("ThrottlingException", "Rate exceeded", 400, "application/x-amz-json-1.1")},
       "over budget: ThrottlingException 400 in JSON 1.1, AWS's wording")
    eq(err_full(sqs1.get_queue_attributes, QueueUrl=queue_url, AttributeNames=["All"])[0], None,
       "other services do not draw on the ECS bucket")
    report = s.call("GET", "/_standin/throttle")[1]
    eq(len(report), 1, "GET throttle: one bucket")
    r = report[0]
    eq((r["target"], r["granted"], r["throttled"], r["by_operation"]),
       ("ecs:*", granted, 8 - granted, {"ecs:ListClusters": {"granted": granted, "throttled": 8 - granted}}),
       "GET throttle: granted and throttled, by operation")
    eq((sum(p["granted"] for p in r["per_second"]), sum(p["throttled"] for p in r["per_second"])),
       (granted, 8 - granted), "GET throttle: per second adds up")
    calls = s.call("GET", "/_standin/calls")[1]
    check(calls.get("ecs:ListClusters", 0) >= 8, "throttled calls are counted as calls")
    time.sleep(1.1)
    eq([err_full(ecs1.list_clusters)[0] for _ in range(2)], [None, None], "the bucket refills at rate_per_s")
    # A query-protocol service throttles with its own code; a second bucket, cleared alone.
    s.call("POST", "/_standin/throttle", {"target": "autoscaling:DescribeAutoScalingGroups",
                                          "rate_per_s": 0.01, "burst": 1})
    asg1 = s.client("autoscaling", retries=1)
    eq([err_full(asg1.describe_auto_scaling_groups)[:3] for _ in range(2)],
       [(None, None, None), ("Throttling", "Rate exceeded", 400)], "query protocol: Throttling")
    eq(s.call("DELETE", "/_standin/throttle", {"target": "autoscaling:DescribeAutoScalingGroups"})[0], 200,
       "DELETE throttle {target}")
    eq([b["target"] for b in s.call("GET", "/_standin/throttle")[1]], ["ecs:*"], "only that bucket is gone")
    st, _ = s.call("POST", "/_standin/throttle", {"target": "ecs:*", "rate_per_s": 1, "burst": 1})
    eq(s.call("GET", "/_standin/throttle")[1][0]["granted"], 0, "posting a target again replaces its bucket")
    # A faulted call takes no token.
    s.call("POST", "/_standin/faults", {"target": "ecs:ListClusters", "error": "ServiceUnavailable", "status": 503})
    eq([err_full(ecs1.list_clusters)[0] for _ in range(2)], ["ServiceUnavailable", None],
       "faults come before the bucket; the faulted call took no token")
    s.call("DELETE", "/_standin/throttle")
    eq(s.call("GET", "/_standin/throttle")[1], [], "DELETE throttle clears every bucket")
    eq([err_full(ecs1.list_clusters)[0] for _ in range(5)], [None] * 5, "no bucket: no throttling")
    for bad in ({"target": "ecs"}, {"target": "ecs:*", "rate_per_s": 0}, {"target": "ecs:*", "rate_per_s": 1,
                                                                           "burst": 0}):
        eq(s.call("POST", "/_standin/throttle", bad)[0], 400, f"bad throttle {bad} -> 400")


def check_expiry_rules() -> None:
    """The timeout arithmetic of lifecycle actions, in this process (no clock to wait on)."""
    sys.path.insert(0, HERE)
    from standin.autoscaling import Lifecycle, LifecycleAction

    a = LifecycleAction("123456789012", "us-east-1", "g", "h", "i-1", "autoscaling:EC2_INSTANCE_TERMINATING")
    a.started_at, a.heartbeat_timeout, a.global_timeout = 1000.0, 30, 3000
    eq(a.expiry(), (1030.0, "heartbeat_timeout"), "expiry: start + HeartbeatTimeout")
    a.heartbeats = [1020.0]
    eq(a.expiry(), (1050.0, "heartbeat_timeout"), "expiry: a heartbeat restarts the heartbeat clock")
    a.heartbeats = [3990.0]
    eq(a.expiry(), (4000.0, "global_timeout"), "expiry: never past start + GlobalTimeout")
    lc = Lifecycle()
    lc.actions.append(a)
    lc.enforce_timeouts(now=5000.0)
    eq(a.state, "active", "enforcement off (the default): nothing expires")
    lc.enforce = True
    lc.enforce_timeouts(now=3999.0)
    eq(a.state, "active", "enforced: not before the expiry")
    lc.enforce_timeouts(now=4000.5)
    eq((a.state, a.result, a.completed_at, a.expired_by, lc.instance_states.get("i-1")),
       ("expired", "ABANDON", 4000.0, "global_timeout", "Terminating:Proceed"),
       "enforced: expired at the instant it ran out, DefaultResult applied")


class EnforcedTimeouts(threading.Thread):
    """Heartbeat timeouts by the real clock (HeartbeatTimeout 30 s, AWS's minimum): runs
    beside the other checks, its own group, hook and clients; results checked at the end."""

    def __init__(self, s) -> None:
        super().__init__(daemon=True)
        self.s = s
        self.results: list[tuple[bool, str]] = []

    def ok(self, cond: bool, what: str) -> None:
        self.results.append((bool(cond), what))

    def run(self) -> None:
        try:
            self.scenario()
        except Exception as e:  # a failure, reported with the rest
            self.results.append((False, f"enforcement scenario raised {e!r}"))

    def scenario(self) -> None:
        s = self.s
        asg_c = s.client("autoscaling", retries=1)
        asg_c.create_auto_scaling_group(AutoScalingGroupName="enf", LaunchTemplate={"LaunchTemplateName": "lt-ecs"},
                                        MinSize=0, MaxSize=3, DesiredCapacity=3, AvailabilityZones=["us-east-1a"])
        asg_c.put_lifecycle_hook(AutoScalingGroupName="enf", LifecycleHookName="drain",
                                 LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING", HeartbeatTimeout=30,
                                 DefaultResult="CONTINUE")
        h = asg_c.describe_lifecycle_hooks(AutoScalingGroupName="enf")["LifecycleHooks"][0]
        self.ok((h["HeartbeatTimeout"], h["GlobalTimeout"]) == (30, 3000),
                f"HeartbeatTimeout 30 (AWS's minimum) kept, GlobalTimeout 100x: {h['HeartbeatTimeout']}, "
                f"{h['GlobalTimeout']}")
        e0, e1, e2 = sorted(i["InstanceId"] for i in asg_c.describe_auto_scaling_groups(
            AutoScalingGroupNames=["enf"])["AutoScalingGroups"][0]["Instances"])
        self.ok(s.call("POST", "/_standin/lifecycle/enforce", {"enabled": True})[1] == {"enabled": True},
                "POST lifecycle/enforce")
        t0 = time.time()
        for i in (e0, e1, e2):
            s.call("POST", "/_standin/lifecycle/start", {"asg": "enf", "hook": "drain", "instance_id": i})
        time.sleep(20)
        asg_c.record_lifecycle_action_heartbeat(AutoScalingGroupName="enf", LifecycleHookName="drain", InstanceId=e1)
        time.sleep(max(0.0, t0 + 25 - time.time()))
        asg_c.complete_lifecycle_action(AutoScalingGroupName="enf", LifecycleHookName="drain",
                                        LifecycleActionResult="CONTINUE", InstanceId=e2)
        time.sleep(max(0.0, t0 + 31 - time.time()))
        state = asg_c.describe_auto_scaling_instances(InstanceIds=[e0])["AutoScalingInstances"][0]["LifecycleState"]
        self.ok(state == "Terminating:Proceed", f"expired by the clock: the instance moves on ({state})")
        code, message, status = err_code(asg_c.record_lifecycle_action_heartbeat, AutoScalingGroupName="enf",
                                         LifecycleHookName="drain", InstanceId=e0)
        self.ok((code, message, status) == ("ValidationError",
                                            f"No active Lifecycle Action found with instance ID {e0}", 400),
                f"heartbeat after the timeout: AWS's ValidationError ({code}, {message})")
        code, _, _ = err_code(asg_c.complete_lifecycle_action, AutoScalingGroupName="enf", LifecycleHookName="drain",
                              LifecycleActionResult="CONTINUE", InstanceId=e0)
        self.ok(code == "ValidationError", "complete after the timeout: ValidationError")
        acts = {a["instance_id"]: a for a in s.call("GET", "/_standin/lifecycle/actions")[1] if a["asg"] == "enf"}
        a0 = acts[e0]
        self.ok((a0["state"], a0["result"], a0["expired_by"], a0["heartbeat_timeout"], a0["global_timeout"])
                == ("expired", "CONTINUE", "heartbeat_timeout", 30, 3000),
                f"no heartbeat for 30 s: expired with the DefaultResult: {a0['state']}, {a0['expired_by']}")
        self.ok(abs(a0["completed_at"] - (a0["started_at"] + 30)) < 0.01,
                "expired_at = start + HeartbeatTimeout, not when it was noticed")
        self.ok((acts[e1]["state"], acts[e2]["state"]) == ("active", "completed"),
                f"a heartbeat at 20 s keeps it alive; a completion before the timeout stands: "
                f"{acts[e1]['state']}, {acts[e2]['state']}")
        self.ok(s.call("POST", "/_standin/lifecycle/enforce", {"enabled": False})[1] == {"enabled": False}
                and s.call("GET", "/_standin/lifecycle/enforce")[1] == {"enabled": False}, "enforcement off again")


def main() -> int:
    t0 = time.time()
    s = StandIn()
    ec2, asg_c, sns, sqs, ssm, ecs = (s.client(n) for n in ("ec2", "autoscaling", "sns", "sqs", "ssm", "ecs"))
    eq(s.call("GET", "/_standin/lifecycle/enforce")[1], {"enabled": False}, "timeouts not enforced by default")

    # ---------------- EC2 + Auto Scaling ----------------
    ami = ssm.get_parameter(Name="/aws/service/ecs/optimized-ami/amazon-linux-2/recommended/image_id")[
        "Parameter"]["Value"]
    ec2.create_launch_template(LaunchTemplateName="lt-ecs", LaunchTemplateData={"ImageId": ami,
                                                                             "InstanceType": "t3.micro"})
    asg_c.create_auto_scaling_group(AutoScalingGroupName="asg", LaunchTemplate={"LaunchTemplateName": "lt-ecs"},
                                    MinSize=0, MaxSize=6, DesiredCapacity=4, AvailabilityZones=["us-east-1a"])
    instances = [i["InstanceId"] for i in
                 asg_c.describe_auto_scaling_groups(AutoScalingGroupNames=["asg"])["AutoScalingGroups"][0]["Instances"]]
    eq(len(instances), 4, "ASG launched instances")
    enforced = EnforcedTimeouts(s)  # ~31 s of real time, beside the checks below
    enforced.start()
    check_expiry_rules()

    topic = sns.create_topic(Name="hooks")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="hooks-q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    direct_url = sqs.create_queue(QueueName="direct-q")["QueueUrl"]
    direct_arn = sqs.get_queue_attributes(QueueUrl=direct_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    asg_c.put_lifecycle_hook(AutoScalingGroupName="asg", LifecycleHookName="drain",
                             LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
                             NotificationTargetARN=topic, RoleARN="arn:aws:iam::123456789012:role/hook",
                             NotificationMetadata='{"cluster":"c1"}', HeartbeatTimeout=300)
    asg_c.put_lifecycle_hook(AutoScalingGroupName="asg", LifecycleHookName="sqs-hook",
                             LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                             NotificationTargetARN=direct_arn, RoleARN="arn:aws:iam::123456789012:role/hook")
    hooks = {h["LifecycleHookName"]: h for h in
             asg_c.describe_lifecycle_hooks(AutoScalingGroupName="asg")["LifecycleHooks"]}
    h = hooks["drain"]
    eq((h["NotificationTargetARN"], h["RoleARN"], h["NotificationMetadata"], h["HeartbeatTimeout"],
        h["GlobalTimeout"], h["DefaultResult"]),
       (topic, "arn:aws:iam::123456789012:role/hook", '{"cluster":"c1"}', 300, 30000, "ABANDON"),
       "DescribeLifecycleHooks keeps every field")
    eq((hooks["sqs-hook"]["HeartbeatTimeout"], hooks["sqs-hook"]["GlobalTimeout"]), (3600, 172800),
       "hook defaults")

    eq(s.call("POST", "/_standin/lambda/subscribe", {"topic_arn": topic, "timeout_ms": 20000})[0], 200,
       "lambda subscribe")

    # lifecycle start -> SNS -> SQS + Lambda
    i0, i1, i2, i3 = instances
    st, started = s.call("POST", "/_standin/lifecycle/start", {"asg": "asg", "hook": "drain", "instance_id": i0})
    eq(st, 200, "lifecycle start")
    msg, token = started["message"], started["token"]
    eq((msg["LifecycleTransition"], msg["Origin"], msg["Destination"], msg["EC2InstanceId"],
        msg["LifecycleActionToken"], msg["NotificationMetadata"], msg["Service"]),
       ("autoscaling:EC2_INSTANCE_TERMINATING", "AutoScalingGroup", "EC2", i0, token, '{"cluster":"c1"}',
        "AWS Auto Scaling"), "notification message")
    eq(s.call("POST", "/_standin/lifecycle/start", {"asg": "asg", "hook": "nope", "instance_id": i0})[0], 400,
       "start with unknown hook -> 400")
    eq(s.call("POST", "/_standin/lifecycle/start", {"asg": "asg", "hook": "drain", "instance_id": "i-0000"})[0],
       400, "start with foreign instance -> 400")
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    eq(len(got), 1, "SQS subscription received the notification")
    if got:
        envelope = json.loads(got[0]["Body"])
        eq(json.loads(envelope["Message"]), msg, "SNS envelope carries the message")
    state = asg_c.describe_auto_scaling_instances(InstanceIds=[i0])["AutoScalingInstances"][0]["LifecycleState"]
    eq(state, "Terminating:Wait", "DescribeAutoScalingInstances LifecycleState")
    group_states = {i["InstanceId"]: i["LifecycleState"] for i in
                    asg_c.describe_auto_scaling_groups(AutoScalingGroupNames=["asg"])["AutoScalingGroups"][0][
                        "Instances"]}
    eq(group_states[i0], "Terminating:Wait", "DescribeAutoScalingGroups LifecycleState")

    # Lambda runtime API: the SNS delivery is queued as an invocation
    headers, event = runtime_next(s.hostport)
    rec = event["Records"][0]
    eq((rec["EventSource"], rec["Sns"]["TopicArn"], json.loads(rec["Sns"]["Message"])), ("aws:sns", topic, msg),
       "runtime next returns the SNS envelope")
    check(rec["EventSubscriptionArn"].startswith(topic + ":"), "EventSubscriptionArn shape")
    check(abs(int(headers["lambda-runtime-deadline-ms"]) - (time.time() * 1000 + 20000)) < 3000, "deadline header")
    eq(headers["lambda-runtime-invoked-function-arn"], "arn:aws:lambda:us-east-1:123456789012:function:local",
       "function ARN header")
    check(headers.get("lambda-runtime-trace-id", "").startswith("Root=1-"), "trace id header")
    rid = headers["lambda-runtime-aws-request-id"]
    eq(runtime_post(s.hostport, rid, "response", {"ok": True}), 202, "runtime response -> 202")
    invs = s.call("GET", "/_standin/lambda/invocations")[1]
    eq([(i["request_id"], i["status"], i["response"]) for i in invs], [(rid, "success", {"ok": True})],
       "invocation recorded as success")

    # heartbeat / complete / ValidationError
    asg_c.record_lifecycle_action_heartbeat(AutoScalingGroupName="asg", LifecycleHookName="drain",
                                            LifecycleActionToken=token)
    code, message, status = err_code(asg_c.complete_lifecycle_action, AutoScalingGroupName="asg",
                                     LifecycleHookName="drain", LifecycleActionResult="CONTINUE",
                                     LifecycleActionToken="11111111-2222-3333-4444-555555555555")
    eq((code, message, status), ("ValidationError",
                                 "No active Lifecycle Action found with token 11111111-2222-3333-4444-555555555555",
                                 400), "Complete with unknown token")
    code, _, _ = err_code(asg_c.complete_lifecycle_action, AutoScalingGroupName="asg", LifecycleHookName="drain",
                          LifecycleActionResult="MAYBE", InstanceId=i0)
    eq(code, "ValidationError", "Complete with bad result")
    asg_c.complete_lifecycle_action(AutoScalingGroupName="asg", LifecycleHookName="drain",
                                    LifecycleActionResult="CONTINUE", InstanceId=i0)
    state = asg_c.describe_auto_scaling_instances(InstanceIds=[i0])["AutoScalingInstances"][0]["LifecycleState"]
    eq(state, "Terminating:Proceed", "state after Complete")
    code, message, _ = err_code(asg_c.complete_lifecycle_action, AutoScalingGroupName="asg",
                                LifecycleHookName="drain", LifecycleActionResult="CONTINUE", InstanceId=i0)
    eq((code, message), ("ValidationError", f"No active Lifecycle Action found with instance ID {i0}"),
       "Complete twice")
    code, _, _ = err_code(asg_c.record_lifecycle_action_heartbeat, AutoScalingGroupName="asg",
                          LifecycleHookName="drain", InstanceId=i0)
    eq(code, "ValidationError", "Heartbeat after Complete")

    # expire
    st, started1 = s.call("POST", "/_standin/lifecycle/start", {"asg": "asg", "hook": "drain", "instance_id": i1})
    eq(s.call("POST", "/_standin/lifecycle/expire", {"instance_id": i1})[0], 200, "expire")
    code, _, _ = err_code(asg_c.record_lifecycle_action_heartbeat, AutoScalingGroupName="asg",
                          LifecycleHookName="drain", LifecycleActionToken=started1["token"])
    eq(code, "ValidationError", "Heartbeat after expiry")
    actions = [a for a in s.call("GET", "/_standin/lifecycle/actions")[1] if a["asg"] == "asg"]
    eq([(a["instance_id"], a["state"], a["result"], a["complete_calls"], len(a["heartbeats"])) for a in actions],
       [(i0, "completed", "CONTINUE", 3, 1), (i1, "expired", "ABANDON", 0, 0)], "actions list")

    # launch hook with an SQS target
    st, started2 = s.call("POST", "/_standin/lifecycle/start",
                          {"asg": "asg", "hook": "sqs-hook", "instance_id": i2,
                           "transition": "autoscaling:EC2_INSTANCE_LAUNCHING"})
    eq((st, started2["message"]["Origin"], started2["message"]["Destination"]), (200, "EC2", "AutoScalingGroup"),
       "launch action")
    body = json.loads(sqs.receive_message(QueueUrl=direct_url, WaitTimeSeconds=1)["Messages"][0]["Body"])
    eq(body["LifecycleActionToken"], started2["token"], "SQS target gets the raw message")
    eq(asg_c.describe_auto_scaling_instances(InstanceIds=[i2])["AutoScalingInstances"][0]["LifecycleState"],
       "Pending:Wait", "Pending:Wait")
    asg_c.complete_lifecycle_action(AutoScalingGroupName="asg", LifecycleHookName="sqs-hook",
                                    LifecycleActionResult="CONTINUE", LifecycleActionToken=started2["token"])
    eq(asg_c.describe_auto_scaling_instances(InstanceIds=[i2])["AutoScalingInstances"][0]["LifecycleState"],
       "Pending:Proceed", "Pending:Proceed")
    # the lambda subscription fired for i1's start too: drain it
    headers, event = runtime_next(s.hostport)
    runtime_post(s.hostport, headers["lambda-runtime-aws-request-id"], "response", None)

    # ---------------- ECS ----------------
    ecs.create_cluster(clusterName="c1")
    ecs.register_task_definition(family="web", containerDefinitions=[
        {"name": "web", "image": "nginx", "memory": 128, "essential": True}])
    cis = {}
    for iid in (i1, i2, i3):
        doc = json.dumps({"instanceId": iid, "region": "us-east-1", "availabilityZone": "us-east-1a"})
        cis[iid] = ecs.register_container_instance(cluster="c1", instanceIdentityDocument=doc)[
            "containerInstance"]["containerInstanceArn"]
    ci_a, ci_b, ci_c = cis[i1], cis[i2], cis[i3]
    check(":container-instance/c1/" in ci_a, f"container instance ARN is long format: {ci_a}")
    web = ecs.create_service(cluster="c1", serviceName="web", taskDefinition="web:1", desiredCount=2)["service"]
    dep_web = web["deployments"][0]["id"]
    agent = ecs.create_service(cluster="c1", serviceName="agent", taskDefinition="web:1",
                               schedulingStrategy="DAEMON")["service"]
    dep_agent = agent["deployments"][0]["id"]
    check(dep_web.startswith("ecs-svc/"), f"deployment id {dep_web}")
    svc_tasks = [ecs.start_task(cluster="c1", taskDefinition="web:1", containerInstances=[ci_a],
                                startedBy=dep_web, group="service:web")["tasks"][0]["taskArn"] for _ in range(2)]
    daemon = ecs.start_task(cluster="c1", taskDefinition="web:1", containerInstances=[ci_a], startedBy=dep_agent,
                            group="service:agent")["tasks"][0]["taskArn"]
    alone = ecs.start_task(cluster="c1", taskDefinition="web:1", containerInstances=[ci_a],
                           startedBy="manual")["tasks"][0]["taskArn"]
    eq(ecs.describe_services(cluster="c1", services=["web"])["services"][0]["runningCount"], 2,
       "service runningCount from tasks")
    eq(ecs.describe_container_instances(cluster="c1", containerInstances=[ci_a])["containerInstances"][0][
        "runningTasksCount"], 4, "runningTasksCount")
    # tasks stay RUNNING however often they are described
    for _ in range(5):
        ecs.describe_tasks(cluster="c1", tasks=[alone])
    eq(ecs.describe_tasks(cluster="c1", tasks=[alone])["tasks"][0]["lastStatus"], "RUNNING",
       "no self-advancing status")

    ecs.update_container_instances_state(cluster="c1", containerInstances=[ci_a], status="DRAINING")
    st, res = s.call("POST", "/_standin/ecs/step", {"cluster": "c1"})
    eq((st, res["replaced"], res["advanced"]), (200, 2, 0), "step replaces the 2 service tasks")
    old = {t["taskArn"]: t for t in ecs.describe_tasks(cluster="c1", tasks=svc_tasks + [daemon, alone])["tasks"]}
    eq([(old[a]["desiredStatus"], old[a]["lastStatus"]) for a in svc_tasks], [("STOPPED", "DEACTIVATING")] * 2,
       "replaced tasks are DEACTIVATING")
    eq([old[a]["lastStatus"] for a in (daemon, alone)], ["RUNNING", "RUNNING"], "daemon + standalone untouched")
    eq(ecs.describe_container_instances(cluster="c1", containerInstances=[ci_a])["containerInstances"][0][
        "runningTasksCount"], 2, "runningTasksCount drops at once")
    running_web = ecs.list_tasks(cluster="c1", serviceName="web")["taskArns"]
    eq(len(running_web), 2, "ListTasks serviceName")
    placed = {t["containerInstanceArn"] for t in ecs.describe_tasks(cluster="c1", tasks=running_web)["tasks"]}
    eq(placed, {ci_b, ci_c}, "replacements placed round robin on ACTIVE instances")
    eq(sorted(ecs.list_tasks(cluster="c1", containerInstance=ci_a)["taskArns"]), sorted([daemon, alone]),
       "ListTasks defaults to desiredStatus RUNNING")
    eq(sorted(ecs.list_tasks(cluster="c1", containerInstance=ci_a, desiredStatus="STOPPED")["taskArns"]),
       sorted(svc_tasks), "ListTasks desiredStatus STOPPED")
    progression = []
    for _ in range(3):
        s.call("POST", "/_standin/ecs/step", {})
        progression.append(ecs.describe_tasks(cluster="c1", tasks=[svc_tasks[0]])["tasks"][0]["lastStatus"])
    eq(progression, ["STOPPING", "DEPROVISIONING", "STOPPED"], "stop progression")
    check("stoppedAt" in ecs.describe_tasks(cluster="c1", tasks=[svc_tasks[0]])["tasks"][0], "stoppedAt set")
    eq(ecs.describe_services(cluster="c1", services=["web"])["services"][0]["runningCount"], 2,
       "runningCount after drain")

    ecs.stop_task(cluster="c1", task=alone, reason="drainer")
    ecs.stop_task(cluster="c1", task=alone, reason="drainer")
    t = ecs.describe_tasks(cluster="c1", tasks=[alone])["tasks"][0]
    eq((t["desiredStatus"], t["lastStatus"], t["stoppedReason"]), ("STOPPED", "DEACTIVATING", "drainer"),
       "StopTask -> DEACTIVATING")
    eq(ecs.describe_container_instances(cluster="c1", containerInstances=[ci_a])["containerInstances"][0][
        "runningTasksCount"], 1, "double StopTask counted once")
    code, message, status = err_code(ecs.stop_task, cluster="c1", task="0123456789abcdef0123456789abcdef")
    eq((code, message, status), ("InvalidParameterException", "The referenced task was not found.", 400),
       "StopTask unknown task")
    d = ecs.describe_tasks(cluster="c1", tasks=[alone, "arn:aws:ecs:us-east-1:123456789012:task/c1/missing"])
    eq((len(d["tasks"]), [f["reason"] for f in d["failures"]]), (1, ["MISSING"]), "DescribeTasks failures")

    # no spare capacity: the drain stalls
    ecs.update_container_instances_state(cluster="c1", containerInstances=[ci_b, ci_c], status="DRAINING")
    res = s.call("POST", "/_standin/ecs/step", {"cluster": "c1"})[1]
    eq((res["replaced"], res["stalled"]), (0, 2), "no ACTIVE instance: drain stalls")
    ecs.update_container_instances_state(cluster="c1", containerInstances=[ci_b, ci_c], status="ACTIVE")

    # the agent's connection, and DeleteAttributes by name (AWS's way)
    st, res = s.call("POST", "/_standin/ecs/agent", {"cluster": "c1", "container_instance": ci_b,
                                                     "connected": False})
    eq((st, res["agent_connected"]), (200, False), "agent endpoint")
    ci_view = lambda: ecs.describe_container_instances(cluster="c1", containerInstances=[ci_b])[
        "containerInstances"][0]
    eq(ci_view()["agentConnected"], False, "agentConnected reported")
    s.call("POST", "/_standin/ecs/agent", {"cluster": "c1", "container_instance": ci_b, "connected": True})
    eq(ci_view()["agentConnected"], True, "agent connected again")
    eq(s.call("POST", "/_standin/ecs/agent", {"cluster": "c1", "container_instance": "nope",
                                              "connected": True})[0], 400, "unknown container instance")
    ecs.put_attributes(cluster="c1", attributes=[{"name": "x.marker", "value": "v1", "targetId": ci_b}])
    check(any(a["name"] == "x.marker" for a in ci_view()["attributes"]), "attribute put")
    ecs.delete_attributes(cluster="c1", attributes=[{"name": "x.marker", "targetId": ci_b}])
    check(all(a["name"] != "x.marker" for a in ci_view()["attributes"]), "attribute deleted by name")

    # filters and paging
    eq(ecs.list_container_instances(cluster="c1", filter=f"ec2InstanceId == {i2}")["containerInstanceArns"], [ci_b],
       "ListContainerInstances filter")
    eq(ecs.list_container_instances(cluster="c1", status="DRAINING")["containerInstanceArns"], [ci_a],
       "ListContainerInstances status")
    st, seeded = s.call("POST", "/_standin/ecs/tasks", {"cluster": "c1", "container_instance": ci_c,
                                                        "task_definition": "web:1", "count": 150,
                                                        "started_by": "bench"})
    eq((st, len(seeded["task_arns"])), (200, 150), "bulk seeding")
    page1 = ecs.list_tasks(cluster="c1", containerInstance=ci_c)
    page2 = ecs.list_tasks(cluster="c1", containerInstance=ci_c, nextToken=page1["nextToken"])
    eq((len(page1["taskArns"]), len(page2["taskArns"]), "nextToken" in page2), (100, 51, False),
       "ListTasks pages by 100")
    code, _, _ = err_code(ecs.describe_tasks, cluster="c1", tasks=seeded["task_arns"][:101])
    eq(code, "InvalidParameterException", "DescribeTasks > 100 rejected")

    # auto step
    ecs.stop_task(cluster="c1", task=seeded["task_arns"][0])
    s.call("POST", "/_standin/ecs/auto", {"interval_ms": 50})
    deadline = time.time() + 5
    while time.time() < deadline:
        if ecs.describe_tasks(cluster="c1", tasks=[seeded["task_arns"][0]])["tasks"][0]["lastStatus"] == "STOPPED":
            break
        time.sleep(0.1)
    s.call("POST", "/_standin/ecs/auto", {"interval_ms": 0})
    eq(ecs.describe_tasks(cluster="c1", tasks=[seeded["task_arns"][0]])["tasks"][0]["lastStatus"], "STOPPED",
       "auto step")

    # a disconnected agent: reported, and the scheduler moves nothing on its instance
    victim = seeded["task_arns"][1]
    ecs.stop_task(cluster="c1", task=victim)
    st, res = s.call("POST", "/_standin/ecs/agent", {"cluster": "c1", "container_instance": ci_c, "connected": False})
    eq((st, res["agent_connected"]), (200, False), "agent disconnected")
    eq(ecs.describe_container_instances(cluster="c1", containerInstances=[ci_c])["containerInstances"][0]
       ["agentConnected"], False, "agentConnected reported false")
    before = ecs.describe_tasks(cluster="c1", tasks=[victim])["tasks"][0]["lastStatus"]
    s.call("POST", "/_standin/ecs/step", {"cluster": "c1"})
    eq(ecs.describe_tasks(cluster="c1", tasks=[victim])["tasks"][0]["lastStatus"], before,
       "nothing moves while the agent is away")
    s.call("POST", "/_standin/ecs/agent", {"cluster": "c1", "container_instance": ci_c, "connected": True})
    s.call("POST", "/_standin/ecs/step", {"cluster": "c1"})
    check(ecs.describe_tasks(cluster="c1", tasks=[victim])["tasks"][0]["lastStatus"] != before,
          "the reconnected agent moves its tasks again")
    st, _ = s.call("POST", "/_standin/ecs/agent", {"cluster": "c1", "container_instance": ci_c})
    eq(st, 400, "agent endpoint: connected required")

    # ---------------- faults + call counts ----------------
    s.call("DELETE", "/_standin/calls")
    s.call("POST", "/_standin/faults", {"target": "ecs:DescribeClusters", "error": "ThrottlingException",
                                        "count": 2})
    ecs1 = s.client("ecs", retries=1)
    c1 = err_code(ecs1.describe_clusters, clusters=["c1"])
    c2 = err_code(ecs1.describe_clusters, clusters=["c1"])
    eq((c1, c2), (("ThrottlingException", "Rate exceeded", 400),) * 2, "JSON fault injected twice")
    eq(ecs1.describe_clusters(clusters=["c1"])["clusters"][0]["clusterName"], "c1", "third call reaches moto")
    s.call("POST", "/_standin/faults", {"target": "ecs:DescribeClusters", "error": "ThrottlingException",
                                        "count": 1})
    eq(len(ecs.describe_clusters(clusters=["c1"])["clusters"]), 1, "SDK retry gets through a throttle")
    s.call("POST", "/_standin/faults", {"target": "autoscaling:DescribeAutoScalingGroups", "error": "Throttling",
                                        "count": 1})
    eq(err_code(s.client("autoscaling", retries=1).describe_auto_scaling_groups)[0], "Throttling",
       "query-protocol fault")
    s.call("POST", "/_standin/faults", {"target": "sqs:ReceiveMessage", "error": "OverLimit", "count": 1,
                                        "status": 403, "message": "nope"})
    eq(err_code(s.client("sqs", retries=1).receive_message, QueueUrl=queue_url)[:2], ("OverLimit", "nope"),
       "JSON 1.0 fault")
    s.call("POST", "/_standin/faults", {"target": "ec2:DescribeInstances", "error": "RequestLimitExceeded",
                                        "count": 1})
    eq(err_code(s.client("ec2", retries=1).describe_instances)[0], "RequestLimitExceeded", "EC2 fault")
    s.call("POST", "/_standin/faults", {"target": "sns:Publish", "error": "Throttled", "count": 5})
    eq(len(s.call("GET", "/_standin/faults")[1]), 1, "GET faults lists what is left")
    s.call("DELETE", "/_standin/faults")
    eq(s.call("GET", "/_standin/faults")[1], [], "DELETE faults")
    calls = s.call("GET", "/_standin/calls")[1]
    eq((calls.get("ecs:DescribeClusters"), calls.get("autoscaling:DescribeAutoScalingGroups"),
        calls.get("sqs:ReceiveMessage"), calls.get("ec2:DescribeInstances")), (5, 1, 1, 1), "call counts")
    s.call("DELETE", "/_standin/calls")
    eq(s.call("GET", "/_standin/calls")[1], {}, "DELETE calls")
    eq(s.call("POST", "/_standin/faults", {"target": "nope"})[0], 400, "bad fault -> 400")
    check_fault_windows(s)
    check_throttle(s, queue_url)

    # ---------------- Lambda sync invoke ----------------
    def fake_function(kind: str) -> None:
        hdrs, ev = runtime_next(s.hostport)
        if kind == "response":
            runtime_post(s.hostport, hdrs["lambda-runtime-aws-request-id"], "response", {"echo": ev})
        else:
            runtime_post(s.hostport, hdrs["lambda-runtime-aws-request-id"], "error",
                         {"errorType": "Boom", "errorMessage": "bad"})

    for kind, expected in (("response", "success"), ("error", "error")):
        th = threading.Thread(target=fake_function, args=(kind,))
        th.start()
        st, res = s.call("POST", "/_standin/lambda/invoke", {"event": {"n": 1}, "timeout_ms": 5000})
        th.join()
        eq((st, res["status"]), (200, expected), f"sync invoke -> {expected}")
        if expected == "success":
            eq(res["response"], {"echo": {"n": 1}}, "sync invoke response")
        else:
            eq(res["error"]["errorType"], "Boom", "sync invoke error")
    # a function process that died while waiting in /next must not swallow the next event
    import socket
    dead = socket.create_connection(tuple(s.hostport.split(":")[:1]) + (int(s.hostport.split(":")[1]),))
    dead.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    dead.close()
    th = threading.Thread(target=fake_function, args=("response",))
    th.start()
    st, res = s.call("POST", "/_standin/lambda/invoke", {"event": {"n": 2}, "timeout_ms": 5000})
    th.join()
    eq(res["status"], "success", "a dead /next waiter does not swallow the invocation")
    st, res = s.call("POST", "/_standin/lambda/invoke", {"event": {}, "timeout_ms": 1, "async": True})
    check(st == 200 and set(res) == {"request_id"}, "async invoke returns request_id")

    # ---------------- launch templates, instance refresh, scaling activities ----------------
    check_launch_templates(ec2, ami)
    check_instance_refresh(s, ec2, asg_c, sqs, ami)
    check_images(s, ec2, instances[0])

    enforced.join(timeout=60)
    check(not enforced.is_alive(), "the enforcement scenario finished")
    for cond, what in enforced.results:
        check(cond, what)
    eq(s.call("POST", "/_standin/lifecycle/enforce", {"enabled": "yes"})[0], 400, "bad enforce -> 400")

    eq(s.call("POST", "/_standin/reset", {})[0], 200, "reset")
    eq((s.call("GET", "/_standin/lifecycle/actions")[1], ecs.list_clusters()["clusterArns"]), ([], []),
       "reset clears moto and the stand-in")

    # ---------------- exit on stdin EOF ----------------
    s.proc.stdin.close()
    try:
        s.proc.wait(timeout=5)
        eq(s.proc.returncode, 0, "exits cleanly on stdin EOF")
    except subprocess.TimeoutExpired:
        s.proc.kill()
        check(False, "exits on stdin EOF")

    print(f"{len(FAILURES)} failed, {time.time() - t0:.1f}s")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
