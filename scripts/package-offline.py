"""`sam package` without S3: SAM CLI's own packaging, artifacts written to a directory.

Run with the SAM CLI venv's Python (scripts/setup-venv.sh makes .venv/lint):

    .venv/lint/bin/python scripts/package-offline.py \
        --template .aws-sam/build/template.yaml --bucket-prefix my-artifacts \
        --artifacts dist/artifacts --output dist/packaged.yaml

SAM CLI's exporter (samcli.lib.package.artifact_exporter.Template, what `sam
package` runs) zips each function's CodeUri and names the zip by its MD5; the
uploader here copies the zip to --artifacts/<key> instead of putting it in S3.
Upload that directory to one bucket per Region (`aws s3 sync dist/artifacts
s3://my-artifacts-us-east-1/`, ...): Lambda reads a function's code only from a
bucket in the function's own Region. With --bucket-prefix every CodeUri becomes
{Bucket: !Sub '<prefix>-${AWS::Region}', Key: <key>}, so one packaged template
serves every Region of a StackSet; with --bucket it names one bucket.

No AWS call is made (no credentials needed): tests/template/org.rs and
scripts/test package template.yaml this way and lint the result.
"""

import argparse
import os
import shutil
import sys

from samcli.lib.package.artifact_exporter import Template
from samcli.lib.package.code_signer import CodeSigner
from samcli.lib.package.ecr_uploader import ECRUploader
from samcli.lib.package.s3_uploader import S3Uploader
from samcli.lib.package.uploaders import Uploaders
from samcli.yamlhelper import yaml_dump, yaml_parse


class DirectoryUploader(S3Uploader):
    """An S3Uploader that writes to a local directory (no client, no network)."""

    def __init__(self, bucket_name, prefix, directory):
        # S3Uploader.__init__ builds a transfer manager on an S3 client: not needed.
        self.s3 = None
        self.bucket_name = bucket_name
        self.prefix = prefix
        self.kms_key_id = None
        self.force_upload = True
        self.no_progressbar = True
        self._artifact_metadata = None
        self.directory = directory

    def upload(self, file_name, remote_path):
        if self.prefix:
            remote_path = f"{self.prefix}/{remote_path}"
        target = os.path.join(self.directory, remote_path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(file_name, target)
        return self.make_url(remote_path)

    def file_exists(self, remote_path):
        return os.path.exists(os.path.join(self.directory, remote_path))


class NoImages(ECRUploader):
    def __init__(self):  # pylint: disable=super-init-not-called
        pass

    def upload(self, *args, **kwargs):
        raise SystemExit("package-offline: image functions are not supported (the template has none)")


def regional(template, bucket, bucket_prefix):
    """s3://BUCKET/KEY CodeUris -> {Bucket: <prefix>-${AWS::Region}, Key: KEY}."""
    for name, resource in template.get("Resources", {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        uri = resource["Properties"].get("CodeUri", "")
        head = f"s3://{bucket}/"
        if not isinstance(uri, str) or not uri.startswith(head):
            raise SystemExit(f"package-offline: {name}: CodeUri {uri!r} was not packaged")
        resource["Properties"]["CodeUri"] = {
            "Bucket": {"Fn::Sub": bucket_prefix + "-${AWS::Region}"},
            "Key": uri[len(head):],
        }
    return template


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", required=True)
    ap.add_argument("--artifacts", required=True, help="directory the zips are written to")
    ap.add_argument("--output", required=True, help="the packaged template")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--bucket", help="one bucket for every Region")
    which.add_argument("--bucket-prefix", help="buckets named <prefix>-<Region>")
    ap.add_argument("--prefix", default="ecs-lifecycle", help="key prefix in the bucket")
    args = ap.parse_args()

    bucket = args.bucket or f"{args.bucket_prefix}-REGION"
    uploaders = Uploaders(DirectoryUploader(bucket, args.prefix, args.artifacts), NoImages())
    with open(args.template, encoding="utf-8") as f:
        template_dict = yaml_parse(f.read())
    # SAM CLI resolves CodeUri paths against the template's directory.
    template = Template(
        args.template,
        os.path.dirname(os.path.abspath(args.template)),
        uploaders,
        CodeSigner(None, None),  # no signing profiles: signs nothing
        normalize_template=True,
        normalize_parameters=True,
        template_dict=template_dict,
    )
    exported = template.export()
    if args.bucket_prefix:
        exported = regional(exported, bucket, args.bucket_prefix)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(yaml_dump(exported))
    print(f"package-offline: {args.output}; artifacts in {args.artifacts}", file=sys.stderr)


if __name__ == "__main__":
    main()
