"""EC2 launch template versions, and what DescribeImages reports of an image.

STAND-IN for what moto 5.2.5 misplays:
  * CreateLaunchTemplateVersion: SourceVersion honoured (the new version is the source
    version's data with the given top-level LaunchTemplateData keys replacing the
    inherited ones); UserData parsed as CreateLaunchTemplate does (moto keeps it
    unparsed, and a later launch from that version then fails inside moto).
  * Version "0" is not found (moto answered with the latest version).
  * Images (`POST /_standin/ec2/image`): moto's CreateImage makes an image that is
    `available` at once, owned by the caller, with the instance's architecture, and no
    other account ever shares one. On AWS an image is `pending` for minutes after
    CreateImage, may end `failed`, `deregistered` or `disabled`, and one shared by
    another account keeps its owner (and has no `amazon` alias unless AWS owns it).
    The endpoint sets what DescribeImages then reports of an existing image: its
    State, OwnerId, ImageOwnerAlias and Architecture.

Plain moto, and relied on: DescribeImages by id (an unknown id alone is
InvalidAMIID.NotFound; among known ones it is left out), the catalogue of public
images moto loads (all of them with the alias `amazon`, arm64 ones among them), and
DescribeInstanceTypes (ProcessorInfo.SupportedArchitectures from AWS's own data; an
unknown type is InvalidInstanceType).
"""

from __future__ import annotations

import copy
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound, MissingParameterError
from moto.ec2.models import launch_templates as ec2_lt_models
from moto.ec2.responses import launch_templates as ec2_lt_responses
from moto.ec2.utils import parse_user_data

from moto.ec2 import ec2_backends

from .common import ACCOUNT_ID, DEFAULT_REGION, MOTO_LOCK, StandInError

IMAGE_STATES = ("pending", "available", "invalid", "deregistered", "transient", "failed", "error",
                "disabled")
ARCHITECTURES = ("i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac")


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


def set_image(body: dict[str, Any]) -> dict[str, Any]:
    """STAND-IN: `POST /_standin/ec2/image` {"image_id", "state"?, "owner_id"?,
    "owner_alias"? (null: none), "architecture"?}: what DescribeImages reports of an
    existing image from now on (see the module docstring). Returns the image's
    ImageId, State, OwnerId, ImageOwnerAlias and Architecture."""
    image_id = body.get("image_id")
    if not isinstance(image_id, str) or not image_id:
        raise StandInError('"image_id" is required (a string)')
    region = body.get("region", DEFAULT_REGION)
    with MOTO_LOCK:
        ami = ec2_backends[ACCOUNT_ID][region].amis.get(image_id)
        if ami is None:
            raise StandInError(f"unknown image {image_id!r}")
        if "state" in body:
            if body["state"] not in IMAGE_STATES:
                raise StandInError(f'"state" must be one of {", ".join(IMAGE_STATES)}')
            ami.state = body["state"]
        if "owner_id" in body:
            owner = body["owner_id"]
            if not isinstance(owner, str) or len(owner) != 12 or not owner.isdigit():
                raise StandInError('"owner_id" must be a 12-digit account id')
            ami.owner_id = owner
        if "owner_alias" in body:
            if body["owner_alias"] is not None and not isinstance(body["owner_alias"], str):
                raise StandInError('"owner_alias" must be a string or null')
            ami.owner_alias = body["owner_alias"]
        if "architecture" in body:
            if body["architecture"] not in ARCHITECTURES:
                raise StandInError(f'"architecture" must be one of {", ".join(ARCHITECTURES)}')
            ami.architecture = body["architecture"]
        return {"ImageId": ami.id, "State": ami.state, "OwnerId": ami.owner_id,
                "ImageOwnerAlias": ami.owner_alias, "Architecture": ami.architecture}
