"""ECS: task stop transitions, the service scheduler on a DRAINING instance, counters,
and AWS's paging, filters and batch limits.

STAND-IN for what moto 5.2.5 lacks or misplays (each place is marked `STAND-IN:`):
  * StopTask: AWS sets desiredStatus=STOPPED and the task then walks RUNNING ->
    DEACTIVATING -> STOPPING -> DEPROVISIONING -> STOPPED; moto jumps to STOPPED, counts
    a second StopTask twice and answers an unknown task with HTTP 500.
  * DRAINING: AWS's service scheduler replaces service tasks of a draining instance on
    other ACTIVE instances (and stalls without capacity); moto only flips the status.
    `POST /_standin/ecs/step` plays one scheduler step, `/_standin/ecs/auto` plays it
    periodically, `/_standin/ecs/tasks` seeds tasks in bulk. moto's self-advancing task
    status is switched off (stop_self_advancing_tasks, called when the server starts).
  * runningTasksCount / pendingTasksCount (container instances, clusters) and a service's
    runningCount are derived from the tasks, as AWS reports them.
  * ListTasks: AWS defaults desiredStatus to RUNNING, matches containerInstance and the
    cluster exactly, filters on serviceName, pages by 100; moto returns STOPPED tasks too,
    substring-matches, ignores serviceName and does not page.
  * ListContainerInstances: pages by 100 and applies the `filter` expressions
    `ec2InstanceId == X`, `ec2InstanceId in [X, Y]`, `attribute:NAME == V` (moto ignores
    `filter`; other expressions are rejected here rather than silently ignored).
  * DescribeTasks: exact ARN/id match in the given cluster, `failures[]` MISSING entries.
  * A disconnected ECS agent: moto's `agentConnected` is always true.
    `POST /_standin/ecs/agent` sets it; the agent is what reports a task's progress, so
    while it is disconnected the scheduler step moves nothing on that instance (its
    tasks keep their lastStatus, as on AWS, where they stay RUNNING until the agent
    reconnects or the instance goes away).
  * DeleteAttributes: AWS deletes by name; moto only when the request repeats the
    value.
  * Batch limits AWS enforces: DescribeTasks / DescribeContainerInstances <= 100,
    DescribeServices / UpdateContainerInstancesState <= 10.
  * EventBridge's `ECS Task State Change` events: moto emits none. `POST
    /_standin/ecs/events` plays the template's EcsTaskStoppedRule (a task of the
    cluster reaching lastStatus STOPPED on a container instance) with the subscribed
    function as its target: each such task is delivered to the function as an async
    invocation (source "eventbridge") `delay_ms` after it stopped. Only task events:
    the Container Instance State Change rule is not played.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import traceback
import uuid
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import ecs_backends
from moto.moto_api import state_manager

from .awslambda import LAMBDA
from .common import ACCOUNT_ID, DEFAULT_REGION, MOTO_LOCK, StandInError, iso_ms, loaded_backends, log


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
    TASK_EVENTS.stopped(task)


class TaskEvents:
    """STAND-IN: EventBridge's rule for tasks STOPPED on container instances of one
    cluster, its target the local function (see the module docstring). Off until
    `POST /_standin/ecs/events` names the cluster."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cluster: str | None = None
        self.timeout_ms = 60000
        self.delay_ms = 0
        self.sent = 0

    def set(self, body: dict[str, Any]) -> dict[str, Any]:
        cluster = body.get("cluster")
        timeout_ms = body.get("timeout_ms", 60000)
        delay_ms = body.get("delay_ms", 0)
        if cluster is not None and (not isinstance(cluster, str) or not cluster):
            raise StandInError('"cluster" must be a cluster name, or null to stop the events')
        for key, val, low in (("timeout_ms", timeout_ms, 1), ("delay_ms", delay_ms, 0)):
            if not isinstance(val, int) or isinstance(val, bool) or val < low:
                raise StandInError(f'"{key}" must be an integer >= {low}')
        with self.lock:
            self.cluster = cluster.split("/")[-1] if cluster else None
            self.timeout_ms, self.delay_ms = timeout_ms, delay_ms
            return {"cluster": self.cluster, "timeout_ms": timeout_ms, "delay_ms": delay_ms, "sent": self.sent}

    def stopped(self, task: Any) -> None:
        with self.lock:
            cluster_arn = getattr(task, "cluster_arn", "") or ""
            if self.cluster is None or cluster_arn.split("/")[-1] != self.cluster:
                return
            if not task.container_instance_arn:  # the rule's containerInstanceArn exists
                return
            self.sent += 1
            timeout_ms, delay_ms, n = self.timeout_ms, self.delay_ms, self.sent
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "ECS Task State Change",
            "source": "aws.ecs",
            "account": ACCOUNT_ID,
            "time": iso_ms(),
            "region": DEFAULT_REGION,
            "resources": [task.task_arn],
            "detail": {
                "clusterArn": cluster_arn,
                "containerInstanceArn": task.container_instance_arn,
                "taskArn": task.task_arn,
                "lastStatus": "STOPPED",
                "desiredStatus": task.desired_status,
                "group": task.group,
                "startedBy": task.started_by,
                "stopCode": getattr(task, "stop_code", None),
                "stoppedReason": getattr(task, "stopped_reason", None),
                "version": n,
            },
        }
        # Delivered from a timer thread: the caller holds MOTO_LOCK.
        timer = threading.Timer(delay_ms / 1000.0, LAMBDA.enqueue, (event, timeout_ms, "eventbridge"))
        timer.daemon = True
        timer.start()


TASK_EVENTS = TaskEvents()


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


_orig_delete_attribute = ecs_models.EC2ContainerServiceBackend._delete_attribute


def _delete_attribute(self: Any, cluster_name: str, name: str, value: str | None = None,
                      target_id: str | None = None, target_type: str | None = None) -> None:
    """STAND-IN for DeleteAttributes: AWS deletes a container instance's attribute by
    name (`value` is optional and not compared); moto deletes it only when the request
    repeats its value."""
    if target_id is not None and value is None:
        ci_id = target_id.rsplit("/", 1)[-1]
        instance = self.container_instances.get(cluster_name, {}).get(ci_id)
        if instance is not None:
            value = instance.attributes.get(name)
    _orig_delete_attribute(self, cluster_name, name, value, target_id, target_type)


ecs_models.EC2ContainerServiceBackend._delete_attribute = _delete_attribute
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


ROUND_ROBIN: dict[str, int] = {}  # round-robin position per cluster ARN


def ecs_step(cluster: str | None = None, max_replacements: int | None = None) -> dict[str, int]:
    """STAND-IN: one step of ECS's agent + service scheduler (see the module docstring)."""
    advanced = replaced = stalled = 0
    with MOTO_LOCK:
        for backend, cl in _ecs_targets(cluster):
            tasks = backend.tasks.get(cl.name, {})
            cis = list(backend.container_instances.get(cl.name, {}).values())
            # STAND-IN: nothing on an instance whose agent is disconnected changes
            # (the agent is what stops tasks and reports them).
            cut_off = {ci.container_instance_arn for ci in cis if not ci.agent_connected}
            # a) tasks told to stop move one state towards STOPPED
            for task in list(tasks.values()):
                if task.container_instance_arn in cut_off:
                    continue
                if task.desired_status == "STOPPED" and task.last_status != "STOPPED":
                    nxt = STOP_PROGRESSION.get(task.last_status, "STOPPED")
                    if nxt == "STOPPED":
                        _mark_stopped(task)
                    else:
                        task.last_status = nxt
                    advanced += 1
            # b) service tasks on DRAINING instances are replaced on ACTIVE ones
            active = [ci for ci in cis if ci.status == "ACTIVE" and ci.agent_connected]
            for ci in cis:
                if ci.status != "DRAINING" or not ci.agent_connected:
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
                    pos = ROUND_ROBIN.get(cl.arn, 0)
                    ROUND_ROBIN[cl.arn] = pos + 1
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


# ---- control endpoints ----


def ecs_step_endpoint(body: dict[str, Any]) -> dict[str, Any]:
    """`POST /_standin/ecs/step`."""
    max_r = body.get("max_replacements")
    if max_r is not None and (not isinstance(max_r, int) or isinstance(max_r, bool) or max_r < 0):
        raise StandInError('"max_replacements" must be an integer >= 0')
    return ecs_step(body.get("cluster"), max_r)


def service_event_endpoint(body: dict[str, Any]) -> dict[str, Any]:
    """`POST /_standin/ecs/service-event` {"cluster", "service", "message"}: STAND-IN for
    the ECS service scheduler's events (DescribeServices' `events`, newest first; moto
    keeps the list but never writes to it). -> the event."""
    cluster, service, message = body.get("cluster"), body.get("service"), body.get("message")
    if not all(isinstance(v, str) and v for v in (cluster, service, message)):
        raise StandInError('"cluster", "service" and "message" must be non-empty strings')
    with MOTO_LOCK:
        for _, _, backend in loaded_backends(ecs_backends):
            for svc in backend.services.values():
                if svc.name == service and cluster in (svc.cluster_name, svc.cluster_arn):
                    event = {"id": str(uuid.uuid4()), "createdAt": utcnow(), "message": message}
                    svc.events.insert(0, event)
                    return {"id": event["id"], "message": message}
    raise StandInError(f"no service {service} in cluster {cluster}")


def ecs_agent_endpoint(body: dict[str, Any]) -> dict[str, Any]:
    """`POST /_standin/ecs/agent` {"cluster", "container_instance", "connected"}: STAND-IN
    for an ECS agent losing (or regaining) its connection; moto's `agentConnected` is
    always true. -> {"container_instance", "agent_connected"}"""
    cluster_str, ci_str, connected = body.get("cluster"), body.get("container_instance"), body.get("connected")
    for key, val in (("cluster", cluster_str), ("container_instance", ci_str)):
        if not isinstance(val, str) or not val:
            raise StandInError(f'"{key}" is required (a string)')
    if not isinstance(connected, bool):
        raise StandInError('"connected" is required (true or false)')
    with MOTO_LOCK:
        (backend, cl), *_ = _ecs_targets(cluster_str)
        ci = backend.container_instances.get(cl.name, {}).get(_ci_id(ci_str))
        if ci is None:
            raise StandInError(f"unknown container instance {ci_str!r} in cluster {cl.name}")
        ci.agent_connected = connected
        return {"container_instance": ci.container_instance_arn, "agent_connected": connected}


def ecs_events_endpoint(body: dict[str, Any]) -> dict[str, Any]:
    """`POST /_standin/ecs/events`."""
    return TASK_EVENTS.set(body)


def ecs_auto_endpoint(body: dict[str, Any]) -> dict[str, Any]:
    """`POST /_standin/ecs/auto`."""
    interval = body.get("interval_ms")
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 0:
        raise StandInError('"interval_ms" must be an integer >= 0 (0 stops)')
    AUTO_STEPPER.set(interval)
    return {"interval_ms": interval}


def stop_self_advancing_tasks() -> None:
    # Tasks stay RUNNING until something stops them: moto otherwise advances a task's
    # lastStatus by itself on every DescribeTasks.
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**15})
