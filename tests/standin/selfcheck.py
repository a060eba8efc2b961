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


def main() -> int:
    t0 = time.time()
    s = StandIn()
    ec2, asg_c, sns, sqs, ssm, ecs = (s.client(n) for n in ("ec2", "autoscaling", "sns", "sqs", "ssm", "ecs"))

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
    actions = s.call("GET", "/_standin/lifecycle/actions")[1]
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
