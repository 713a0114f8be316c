"""Runs SAM's own transform (samtranslator, from the SAM CLI's environment) on a template with given parameter values,
as CloudFormation does at deploy time, and prints the resulting template as JSON.

`.venv/sam-cli/bin/python tests/sam_transform.py '{"SnapStart": "Enabled"}' [function-code layer-code [template]]`:
the code locations stand for what `sam package` uploads (a new upload is a new location); the template is
template.yaml unless given (e.g. one of the stacks deploy/split.py writes). A parameter with no default and no value
given gets a placeholder."""

import json
import os
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
# Values for the parameters that have no default (a deployment's own).
DEPLOYMENT = {
    "DatabaseProxyEndpoint": "echo.proxy-abc.us-east-1.rds.amazonaws.com",
    "DatabaseSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:echo-db",
    "StripeSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:echo-stripe",
    "SubnetIds": ["subnet-1", "subnet-2"],
    "SecurityGroupIds": ["sg-1"],
}


class NoManagedPolicies:
    def load(self) -> dict:
        return {}


def placeholder(declared: dict) -> object:
    return ["placeholder"] if declared["Type"].startswith(("List<", "CommaDelimitedList")) else "placeholder"


def main(overrides: dict, function_code: str, layer_code: str, path: Path = TEMPLATE) -> None:
    template = yaml_parse(path.read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://artifacts/{function_code}"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = f"s3://artifacts/{layer_code}"
        elif resource["Type"] == "AWS::Serverless::Application":
            resource["Properties"]["Location"] = (
                f"https://artifacts.s3.amazonaws.com/{resource['Properties']['Location']}"
            )
    declared = template.get("Parameters", {})
    parameters = {name: p.get("Default", placeholder(p)) for name, p in declared.items()}
    parameters |= {k: v for k, v in DEPLOYMENT.items() if k in declared} | overrides
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    print(json.dumps(transform(template, parameters, NoManagedPolicies())))


if __name__ == "__main__":
    codes = sys.argv[2:4] or ["functions-1", "layer-1"]
    main(json.loads(sys.argv[1]), *codes, *[Path(p) for p in sys.argv[4:5]])
