"""SSM Run Command: SendCommand and GetCommandInvocation report what a test scripted.

STAND-IN: moto 5.2.5 accepts any instance in SendCommand and always answers
GetCommandInvocation with Success / 0 and empty output. Tests script per instance what
the run reports (status, exit code, stdout, polls spent InProgress:
`POST /_standin/ssm/outcome`) or that SSM cannot reach it (`/_standin/ssm/unreachable`:
SendCommand -> InvalidInstanceId), and read back what was sent (`GET /_standin/ssm/commands`).
"""

from __future__ import annotations

import time
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ssm import models as ssm_models
from moto.ssm import responses as ssm_responses

from .common import ACCOUNT_ID, StandInError


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
