"""What IAM would check for each request a function makes: the recording behind the
policy-engine check of the functions' roles (tests/template/iam_simulation.rs).

moto enforces no IAM at all, so a role that lacks a grant passes every integration
test. When the environment names a directory (`ECS_LIFECYCLE_IAM_RECORD`, set by
scripts/test), every AWS request signed with a function's test credentials (an access
key id `FN...`, given by testkit's `as_function`, which writes the function and its
configuration to `deployments-<pid>.jsonl` in the same directory) is written to
`requests-<pid>.jsonl` there, one line per request:

    {"key", "service", "operation", "hooks": [{"group", "target"}], "checks": [
        {"action", "resource", "context", "via"?}]}

`checks` is what IAM authorizes for the request, per AWS's Service Authorization
Reference: the IAM action, the resource ARN of each resource the action has a
resource type for ("*" where it has none), and the condition keys IAM would set
(ecs:cluster, the resource's tags as aws:ResourceTag/... and the service's own
ResourceTag keys, aws:TagKeys and aws:RequestTag/... of a tagging call). Some requests
make AWS authorize more than the call itself, as the caller: Auto Scaling checks
ec2:RunInstances, ec2:CreateTags and iam:PassRole of the caller when a group is
updated, or a refresh started, with a launch template ("via": the call). The state
these need (the group of an instance, the tags of a launch template or an instance)
is read from moto's backends before the request runs. `hooks` are the lifecycle hooks
at the time: the stack creates one per group it is deployed for, notifying its topic.

Nothing here changes what the stand-in answers.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from typing import Any

from .common import ACCOUNT_ID, MOTO_LOCK, log

RECORD_DIR = os.environ.get("ECS_LIFECYCLE_IAM_RECORD") or None


class Unmapped(Exception):
    """A call this file does not map to IAM yet."""
_WRITE = threading.Lock()


def _backend(service: str, region: str) -> Any:
    from moto.backends import get_backend

    return get_backend(service)[ACCOUNT_ID][region]


def _form(body: bytes, environ: dict[str, Any]) -> dict[str, str]:
    """A query-protocol request's parameters (form body and query string), flat."""
    out: dict[str, str] = {}
    for source in (environ.get("QUERY_STRING", ""), body.decode("utf-8", "replace")):
        for k, v in urllib.parse.parse_qsl(source, keep_blank_values=True):
            out[k] = v
    return out


def _members(form: dict[str, str], prefix: str) -> list[str]:
    """`Prefix.member.1`, `Prefix.1`, ... in order."""
    found = []
    for k, v in form.items():
        rest = k[len(prefix) + 1:] if k.startswith(prefix + ".") else None
        if rest is None:
            continue
        idx = rest.split(".")[-1]
        if idx.isdigit() and rest in (idx, f"member.{idx}"):
            found.append((int(idx), v))
    return [v for _, v in sorted(found)]


def _tags(items: Any) -> dict[str, str]:
    """moto's tag lists ({"Key", "Value"} or {"key", "value"}) as a dict."""
    out = {}
    for t in items or []:
        key = t.get("Key", t.get("key"))
        if key is not None:
            out[key] = t.get("Value", t.get("value", ""))
    return out


def _tag_context(tags: dict[str, str], service_prefix: str | None) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    for k, v in tags.items():
        ctx[f"aws:ResourceTag/{k}"] = v
        if service_prefix:
            ctx[f"{service_prefix}:ResourceTag/{k}"] = v
    return ctx


# ---------------------------------------------------------------- ECS


def _ecs(op: str, p: dict[str, Any], region: str) -> list[dict[str, Any]]:
    base = f"arn:aws:ecs:{region}:{ACCOUNT_ID}"
    cluster = p.get("cluster") or "default"
    cluster_name = cluster.rsplit("/", 1)[-1] if cluster.startswith("arn:") else cluster
    cluster_arn = cluster if cluster.startswith("arn:") else f"{base}:cluster/{cluster}"
    ctx = {"ecs:cluster": cluster_arn}

    def arn(kind: str, ref: str) -> str:
        return ref if ref.startswith("arn:") else f"{base}:{kind}/{cluster_name}/{ref}"

    def each(action: str, kind: str, refs: list[str]) -> list[dict[str, Any]]:
        return [{"action": action, "resource": arn(kind, r), "context": ctx} for r in refs]

    if op == "ListContainerInstances":
        return [{"action": "ecs:ListContainerInstances", "resource": cluster_arn, "context": {}}]
    if op == "ListClusters":
        return [{"action": "ecs:ListClusters", "resource": "*", "context": {}}]
    if op == "ListServices":
        return [{"action": "ecs:ListServices", "resource": "*", "context": ctx}]
    if op == "DescribeContainerInstances":
        return each("ecs:DescribeContainerInstances", "container-instance", p.get("containerInstances", []))
    if op == "UpdateContainerInstancesState":
        return each("ecs:UpdateContainerInstancesState", "container-instance", p.get("containerInstances", []))
    if op in ("PutAttributes", "DeleteAttributes"):
        return each(f"ecs:{op}", "container-instance",
                    sorted({a["targetId"] for a in p.get("attributes", []) if a.get("targetId")}))
    if op == "ListTasks":
        if p.get("containerInstance"):
            return each("ecs:ListTasks", "container-instance", [p["containerInstance"]])
        return [{"action": "ecs:ListTasks", "resource": f"{base}:container-instance/{cluster_name}/*",
                 "context": ctx}]
    if op == "DescribeTasks":
        return each("ecs:DescribeTasks", "task", p.get("tasks", []))
    if op == "StopTask":
        return each("ecs:StopTask", "task", [p["task"]])
    if op == "DescribeServices":
        return each("ecs:DescribeServices", "service", p.get("services", []))
    raise Unmapped(op)


# ---------------------------------------------------------------- Auto Scaling


def _group_arn_and_tags(name: str, region: str) -> tuple[str, dict[str, str]]:
    group = _backend("autoscaling", region).autoscaling_groups.get(name)
    if group is None:
        return f"arn:aws:autoscaling:{region}:{ACCOUNT_ID}:autoScalingGroup:*:autoScalingGroupName/{name}", {}
    return group.arn, _tags(group.tags)


def _group_of_instance(instance_id: str, region: str) -> str | None:
    for group in _backend("autoscaling", region).autoscaling_groups.values():
        if any(s.instance.id == instance_id for s in group.instance_states):
            return group.name
    return None


def _launch_template(ref_id: str | None, ref_name: str | None, region: str) -> Any | None:
    ec2 = _backend("ec2", region)
    if not ref_id and ref_name:
        ref_id = ec2.launch_template_name_to_ids.get(ref_name)
    return ec2.launch_templates.get(ref_id) if ref_id else None


def _launch_checks(template: Any, region: str, via: str) -> list[dict[str, Any]]:
    """What Auto Scaling authorizes as the caller for a launch through `template`:
    ec2:RunInstances on the launch template and on what the launch uses, the tags the
    template's TagSpecifications put on them, and iam:PassRole of its instance
    profile's role (the profile named as its role, the convention of AWS's console)."""
    lt_arn = f"arn:aws:ec2:{region}:{ACCOUNT_ID}:launch-template/{template.id}"
    tags = _tags(template.get_tags())
    ctx_lt = {"ec2:LaunchTemplate": lt_arn, "ec2:IsLaunchTemplateResource": "true"}
    out = [{"action": "ec2:RunInstances", "resource": lt_arn,
            "context": {**_tag_context(tags, "ec2"), **ctx_lt}, "via": via}]
    data = template.latest_version().data if template.versions else {}
    image = data.get("ImageId", "ami-unknown")
    for resource in (
        f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/*",
        f"arn:aws:ec2:{region}:{ACCOUNT_ID}:volume/*",
        f"arn:aws:ec2:{region}:{ACCOUNT_ID}:network-interface/*",
        f"arn:aws:ec2:{region}:{ACCOUNT_ID}:subnet/*",
        f"arn:aws:ec2:{region}:{ACCOUNT_ID}:security-group/*",
        f"arn:aws:ec2:{region}::image/{image}",
    ):
        out.append({"action": "ec2:RunInstances", "resource": resource, "context": ctx_lt, "via": via})
    if data.get("TagSpecifications"):
        out.append({"action": "ec2:CreateTags", "resource": f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/*",
                    "context": {"ec2:CreateAction": "RunInstances"}, "via": via})
    profile = data.get("IamInstanceProfile") or {}
    role = profile.get("Name") or (profile.get("Arn") or "").rsplit("/", 1)[-1]
    if role:
        out.append({"action": "iam:PassRole", "resource": f"arn:aws:iam::{ACCOUNT_ID}:role/{role}",
                    "context": {"iam:PassedToService": "ec2.amazonaws.com"}, "via": via})
    return out


def _autoscaling(op: str, f: dict[str, str], region: str) -> list[dict[str, Any]]:
    action = f"autoscaling:{op}"
    if op.startswith("Describe"):
        return [{"action": action, "resource": "*", "context": {}}]

    def on_group(name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        arn, tags = _group_arn_and_tags(name, region)
        return {"action": action, "resource": arn, "context": {**_tag_context(tags, "autoscaling"), **(extra or {})}}

    if op in ("SetInstanceHealth", "TerminateInstanceInAutoScalingGroup"):
        group = _group_of_instance(f.get("InstanceId", ""), region)
        return [on_group(group or "(no group)")]
    if op in ("CreateOrUpdateTags", "DeleteTags"):
        by_group: dict[str, dict[str, str]] = {}
        i = 1
        while f.get(f"Tags.member.{i}.ResourceId") is not None or f.get(f"Tags.member.{i}.Key") is not None:
            group = f.get(f"Tags.member.{i}.ResourceId", "")
            by_group.setdefault(group, {})[f.get(f"Tags.member.{i}.Key", "")] = f.get(f"Tags.member.{i}.Value", "")
            i += 1
        out = []
        for group, tags in by_group.items():
            extra: dict[str, Any] = {"aws:TagKeys": sorted(tags)}
            if op == "CreateOrUpdateTags":
                extra.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
            out.append(on_group(group, extra))
        return out
    name = f.get("AutoScalingGroupName", "")
    checks = [on_group(name)]
    if op == "UpdateAutoScalingGroup" and (f.get("LaunchTemplate.LaunchTemplateId") or f.get("LaunchTemplate.LaunchTemplateName")):
        lt = _launch_template(f.get("LaunchTemplate.LaunchTemplateId"), f.get("LaunchTemplate.LaunchTemplateName"), region)
        if lt is not None:
            checks += _launch_checks(lt, region, action)
    if op == "StartInstanceRefresh":
        lt_id = f.get("DesiredConfiguration.LaunchTemplate.LaunchTemplateId")
        lt_name = f.get("DesiredConfiguration.LaunchTemplate.LaunchTemplateName")
        lt = _launch_template(lt_id, lt_name, region)
        if lt is None:
            group = _backend("autoscaling", region).autoscaling_groups.get(name)
            lt = getattr(group, "ec2_launch_template", None)
        if lt is not None:
            checks += _launch_checks(lt, region, action)
    return checks


# ---------------------------------------------------------------- EC2, SSM, SNS


def _ec2(op: str, f: dict[str, str], region: str) -> list[dict[str, Any]]:
    action = f"ec2:{op}"
    if op.startswith("Describe"):
        return [{"action": action, "resource": "*", "context": {}}]
    if op == "CreateLaunchTemplateVersion":
        lt = _launch_template(f.get("LaunchTemplateId"), f.get("LaunchTemplateName"), region)
        lt_id = lt.id if lt is not None else (f.get("LaunchTemplateId") or "lt-unknown")
        tags = _tags(lt.get_tags()) if lt is not None else {}
        return [{"action": action, "resource": f"arn:aws:ec2:{region}:{ACCOUNT_ID}:launch-template/{lt_id}",
                 "context": _tag_context(tags, "ec2")}]
    if op == "CreateTags":
        # Authorized once per resource, with the request's tags (aws:TagKeys,
        # aws:RequestTag/...) and the resource's own (aws:ResourceTag/...,
        # ec2:ResourceTag/...), per the Service Authorization Reference.
        request_tags: dict[str, str] = {}
        i = 1
        while f.get(f"Tag.{i}.Key") is not None:
            request_tags[f[f"Tag.{i}.Key"]] = f.get(f"Tag.{i}.Value", "")
            i += 1
        request_ctx: dict[str, Any] = {"aws:TagKeys": sorted(request_tags)}
        request_ctx.update({f"aws:RequestTag/{k}": v for k, v in request_tags.items()})
        ec2 = _backend("ec2", region)
        out = []
        for resource_id in _members(f, "ResourceId"):
            if not resource_id.startswith("i-"):
                raise Unmapped(f"{op} on {resource_id}")
            try:
                tags = _tags(ec2.get_instance(resource_id).get_tags())
            except Exception:
                tags = {}
            # AWS tags every instance a group launches with aws:autoscaling:groupName;
            # moto does not.
            group = _group_of_instance(resource_id, region)
            if group is not None:
                tags.setdefault("aws:autoscaling:groupName", group)
            out.append({"action": action, "resource": f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/{resource_id}",
                        "context": {**_tag_context(tags, "ec2"), **request_ctx}})
        return out
    raise Unmapped(op)


def _ssm(op: str, p: dict[str, Any], region: str) -> list[dict[str, Any]]:
    action = f"ssm:{op}"
    if op == "GetCommandInvocation":
        return [{"action": action, "resource": "*", "context": {}}]
    if op == "GetParameter":
        name = p.get("Name", "")
        if name.startswith("arn:"):
            return [{"action": action, "resource": name, "context": {}}]
        account = "" if name.startswith("/aws/service/") else ACCOUNT_ID
        return [{"action": action, "resource": f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}",
                 "context": {}}]
    if op == "SendCommand":
        doc = p.get("DocumentName", "")
        doc_account = "" if doc.startswith("AWS-") else ACCOUNT_ID
        out = [{"action": action, "resource": doc if doc.startswith("arn:") else
                f"arn:aws:ssm:{region}:{doc_account}:document/{doc}", "context": {}}]
        ec2 = _backend("ec2", region)
        for instance_id in p.get("InstanceIds", []):
            try:
                tags = _tags(ec2.get_instance(instance_id).get_tags())
            except Exception:
                tags = {}
            # AWS tags every instance a group launches with aws:autoscaling:groupName;
            # moto does not.
            group = _group_of_instance(instance_id, region)
            if group is not None:
                tags.setdefault("aws:autoscaling:groupName", group)
            out.append({"action": action, "resource": f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/{instance_id}",
                        "context": _tag_context(tags, "ssm")})
        return out
    raise Unmapped(op)


def _sns(op: str, f: dict[str, str], region: str) -> list[dict[str, Any]]:
    if op == "Publish":
        return [{"action": "sns:Publish", "resource": f.get("TopicArn") or f.get("TargetArn", ""), "context": {}}]
    raise Unmapped(op)


def _dynamodb(op: str, body: dict[str, Any], region: str) -> list[dict[str, Any]]:
    """The drain budget's table (terminate-drain's MAX_CONCURRENT_DRAINS): item reads
    and conditional writes, each authorized on the table's ARN."""
    if op in ("GetItem", "PutItem"):
        table = body.get("TableName", "")
        resource = table if table.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{table}"
        # dynamodb:LeadingKeys: the partition key values the request touches.
        item = body.get("Key") if op == "GetItem" else body.get("Item")
        keys = [v.get("S") for k, v in (item or {}).items() if k == "cluster" and isinstance(v, dict)]
        return [{"action": f"dynamodb:{op}", "resource": resource,
                 "context": {"dynamodb:LeadingKeys": [k for k in keys if k is not None]}}]
    raise Unmapped(op)


# ---------------------------------------------------------------- recording


def _hooks(region: str) -> list[dict[str, Any]]:
    """The lifecycle hooks: the stack creates one per group it was deployed for, each
    notifying its topic."""
    return sorted(
        ({"group": h.auto_scaling_group_name, "target": getattr(h, "notification_target_arn", None)}
         for h in _backend("autoscaling", region).lifecycle_hooks.values()),
        key=lambda h: (h["group"], h["target"] or ""),
    )


def record(environ: dict[str, Any], body: bytes, service: str, operation: str, region: str,
           access_key: str | None) -> None:
    """Writes the request's line when recording and the caller is a function. A bug
    here never fails the request: the line then says so, and the check fails on it."""
    if RECORD_DIR is None or not access_key or not access_key.startswith("FN"):
        return
    try:
        _record(environ, body, service, operation, region, access_key)
    except Exception as e:  # noqa: BLE001
        log(f"iam: cannot record {service}:{operation}: {e!r}")
        _write({"key": access_key, "service": service, "operation": operation, "hooks": [],
                "checks": [{"action": f"{service}:{operation}", "resource": f"(recording error: {e!r})",
                            "context": {}}]})


def _write(line: dict[str, Any]) -> None:
    assert RECORD_DIR is not None
    os.makedirs(RECORD_DIR, exist_ok=True)
    with _WRITE, open(os.path.join(RECORD_DIR, f"requests-{os.getpid()}.jsonl"), "a") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")


def _record(environ: dict[str, Any], body: bytes, service: str, operation: str, region: str,
            access_key: str) -> None:
    try:
        json_body = json.loads(body) if body.strip().startswith(b"{") else {}
    except ValueError:
        json_body = {}
    with MOTO_LOCK:
        try:
            if service == "ecs":
                checks = _ecs(operation, json_body, region)
            elif service == "autoscaling":
                checks = _autoscaling(operation, _form(body, environ), region)
            elif service == "ec2":
                checks = _ec2(operation, _form(body, environ), region)
            elif service == "ssm":
                checks = _ssm(operation, json_body, region)
            elif service == "sns":
                checks = _sns(operation, _form(body, environ), region)
            elif service == "dynamodb":
                checks = _dynamodb(operation, json_body, region)
            else:
                raise Unmapped(operation)
        except Unmapped:
            # A call this file does not map yet: the check fails on it by name.
            checks = [{"action": f"{service}:{operation}", "resource": "(unmapped)", "context": {}}]
        hooks = _hooks(region)
    _write({"key": access_key, "service": service, "operation": operation, "hooks": hooks,
            "checks": checks})
