"""What CloudFormation deploys from a SAM template: its transforms, run offline.

    .venv/lint/bin/python scripts/sam-translate.py TEMPLATE [Name=Value ...]

Prints the template as CloudFormation runs it (JSON): AWS::LanguageExtensions
expanded by SAM CLI's implementation of it (Fn::ForEach for these parameter
values), then AWS::Serverless-2016-10-31 by the SAM translator (the library the
transform runs). No AWS call: the template uses no SAM policy templates or
managed policies, so no policy map is needed. tests/template/org.rs reads the
output (the alias SNS invokes, the roles SAM would make, the propagated tags).
"""

import json
import os
import sys

from samcli.lib.cfn_language_extensions.sam_integration import expand_language_extensions
from samcli.yamlhelper import yaml_parse
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator


def main():
    path, *pairs = sys.argv[1:]
    params = dict(p.split("=", 1) for p in pairs)
    pseudo = {
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::StackName": "ecs-lifecycle",
    }
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    values = {**pseudo, **params}
    template = expand_language_extensions(template, values, enabled=True).expanded_template
    transform = template.get("Transform")
    if isinstance(transform, list):
        rest = [t for t in transform if t != "AWS::LanguageExtensions"]
        template["Transform"] = rest[0] if len(rest) == 1 else rest
    # The translator finds the Region through boto3 unless it is set.
    os.environ.setdefault("AWS_DEFAULT_REGION", pseudo["AWS::Region"])
    out = Translator({}, Parser()).translate(template, parameter_values=values)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
