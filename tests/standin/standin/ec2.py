"""EC2 launch template versions.

STAND-IN for what moto 5.2.5 misplays:
  * CreateLaunchTemplateVersion: SourceVersion honoured (the new version is the source
    version's data with the given top-level LaunchTemplateData keys replacing the
    inherited ones); UserData parsed as CreateLaunchTemplate does (moto keeps it
    unparsed, and a later launch from that version then fails inside moto).
  * Version "0" is not found (moto answered with the latest version).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound, MissingParameterError
from moto.ec2.models import launch_templates as ec2_lt_models
from moto.ec2.responses import launch_templates as ec2_lt_responses
from moto.ec2.utils import parse_user_data

from .common import MOTO_LOCK


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
