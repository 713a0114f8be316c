"""Reads the routes and the authorizer from template.yaml: the one route table."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
# The local runner is a development deployment: what the template creates only there, it serves; what exists only
# with a Cognito user pool (the custom resource that configures its client) it does not.
LOCAL_CONDITIONS = {"IsDevelopment": True, "CreatesUserPool": False}
# What the runner reads of the template; other resources (log groups, roles) exist only in the cloud.
SERVED = {"AWS::Serverless::Function", "AWS::Serverless::Api"}


class _CfnLoader(yaml.SafeLoader):
    """Keeps CloudFormation short-form tags (!Ref, !GetAtt, !Sub …) as {"Ref": …} style mappings."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@dataclass(frozen=True)
class Route:
    function: str  # logical id
    code_dir: Path
    method: str
    path: str  # API Gateway form: /api/echo-apps/{id}
    authorized: bool
    pattern: re.Pattern[str]

    @property
    def greedy(self) -> bool:
        return "+}" in self.path

    def accepts(self, method: str) -> bool:
        return self.method in (method, "ANY")

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


@dataclass(frozen=True)
class Api:
    routes: list[Route]
    authorizer_dir: Path
    functions: dict[str, Path]


def _pattern(path: str) -> re.Pattern[str]:
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            regex += f"(?P<{name.rstrip('+')}>.+)" if name.endswith("+") else f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(regex)


def _created_locally(name: str, resource: dict[str, Any]) -> bool:
    condition = resource.get("Condition")
    if condition is None:
        return True
    if condition not in LOCAL_CONDITIONS:
        raise ValueError(f"{name}: the local runner does not know condition {condition}")
    return LOCAL_CONDITIONS[condition]


def global_environment(template: Path = TEMPLATE) -> dict[str, str]:
    """The variables Globals gives every function as plain values (the rest come from parameters)."""
    doc = yaml.load(template.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    variables = doc["Globals"]["Function"]["Environment"]["Variables"]
    return {name: str(value) for name, value in variables.items() if not isinstance(value, dict)}


def _function_named(arn: dict[str, Any]) -> str:
    """The function an ARN expression names: !GetAtt F.Arn, !Ref F.Alias, or either under !If (SnapStart)."""
    if "Fn::If" in arn:
        names = {_function_named(branch) for branch in arn["Fn::If"][1:]}
        if len(names) != 1:
            raise ValueError(f"the authorizer is a different function depending on a condition: {sorted(names)}")
        return names.pop()
    if "Fn::GetAtt" in arn:
        return str(arn["Fn::GetAtt"][0])
    return str(arn["Ref"]).split(".", 1)[0]


def load(template: Path = TEMPLATE) -> Api:
    doc = yaml.load(template.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    resources = {
        name: res
        for name, res in doc["Resources"].items()
        if res["Type"] in SERVED and _created_locally(name, res)  # the rest (logs, roles) is the cloud's
    }
    functions = {
        name: ROOT / res["Properties"]["CodeUri"]
        for name, res in resources.items()
        if res["Type"] == "AWS::Serverless::Function"
    }
    api_auth = next(r for r in resources.values() if r["Type"] == "AWS::Serverless::Api")["Properties"]["Auth"]
    default = api_auth["Authorizers"][api_auth["DefaultAuthorizer"]]
    authorizer_fn = _function_named(default["FunctionArn"])
    routes = []
    for name, res in resources.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        for event in (res["Properties"].get("Events") or {}).values():
            if event["Type"] != "Api":
                continue
            props = event["Properties"]
            auth = (props.get("Auth") or {}).get("Authorizer", api_auth["DefaultAuthorizer"])
            routes.append(
                Route(
                    function=name,
                    code_dir=functions[name],
                    method=props["Method"].upper(),
                    path=props["Path"],
                    authorized=auth != "NONE",
                    pattern=_pattern(props["Path"]),
                )
            )
    # Literal segments win over parameters, and any resource over a greedy {proxy+}, as in API Gateway.
    routes.sort(key=lambda r: (r.greedy, r.path.count("{"), -len(r.path)))
    return Api(routes=routes, authorizer_dir=functions[authorizer_fn], functions=functions)
