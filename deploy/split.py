"""Lays template.yaml out as CloudFormation deploys it: a root stack and nested stacks, none near the 500
resources CloudFormation allows one stack.

template.yaml stays the one place where each function is declared with its code and its route. SAM gives every
function a role, a version and an alias, and every route a permission; with a log group per function, the next
features' functions and the network, database and alarms, one stack would pass 500. So `make deploy` (and the
tests) deploy what this module writes into .aws-sam/stacks/:

- template.yaml, the root: everything but the routed functions (parameters, network, database, sign-in, the layer,
  the API and its authorizer, scheduled and background functions, alarms), and for each route its path in the
  API's definition and the permission for API Gateway to invoke the function;
- the digest of the migrations on the custom resource that runs them;
- one nested stack per group of routed functions (GROUPS: the pages, the JSON API): those functions as declared,
  without their Api events, and an output per function (its alias, which the root's routes invoke).

Each function, in whichever stack, gets its own log group with the retention LogRetentionDays.

`python -m deploy.split [OUT]` writes the stacks (OUT defaults to .aws-sam/stacks).
"""

import copy
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from local_runner import template

ROOT = template.ROOT
OUT = ROOT / ".aws-sam" / "stacks"
FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
# The custom resource that runs the migrations (template.yaml): it carries their digest, so that CloudFormation
# invokes it again exactly when they change, and the nested stacks' functions change only after it.
MIGRATIONS = "Migrations"
MIGRATIONS_DIR = ROOT / "layers" / "common" / "echo_control" / "migrations"
API = "EchoApi"
# The nested stacks, and which routed function goes to which: the first group whose rule takes any of its paths.
GROUPS: dict[str, Any] = {
    "ApiFunctions": lambda path: path.startswith("/api/"),
    "PageFunctions": lambda path: True,
}
PSEUDO = re.compile(r"AWS::\w+")
SUB_NAME = re.compile(r"\$\{(?!!)([A-Za-z0-9_:]+)(?:\.([A-Za-z0-9_.]+))?\}")
LIST_TYPES = ("List<", "CommaDelimitedList")


def load(path: Path = template.TEMPLATE) -> dict[str, Any]:
    return dict(yaml.load(path.read_text(), Loader=template._CfnLoader))  # noqa: S506 - a SafeLoader subclass


def api_events(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events = resource.get("Properties", {}).get("Events") or {}
    return {name: event for name, event in events.items() if event["Type"] == "Api"}


def group_of(resource: dict[str, Any]) -> str | None:
    """The nested stack of a routed function (None: it stays in the root)."""
    if resource["Type"] != FUNCTION or not api_events(resource):
        return None
    paths = [event["Properties"]["Path"] for event in api_events(resource).values()]
    return next(group for group, takes in GROUPS.items() if any(takes(path) for path in paths))


# --- what a piece of template refers to --------------------------------------------------------------------


def names_in(value: Any) -> Iterator[tuple[str, str | None]]:
    """(name, attribute) for every Ref, GetAtt and ${} in Sub: parameters, resources and pseudo parameters."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            name, _, attribute = str(value["Ref"]).partition(".")
            yield name, attribute or None
            return
        if set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            yield str(target[0]), str(target[1])
            return
        if set(value) == {"Fn::Sub"}:
            text, variables = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
            for found in SUB_NAME.finditer(text):
                if found.group(1) not in variables:
                    yield found.group(1), found.group(2)
            yield from names_in(variables)
            return
        for item in value.values():
            yield from names_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from names_in(item)


def conditions_in(value: Any) -> Iterator[str]:
    """Conditions a piece of template uses: in Fn::If, in {"Condition": name} and as a resource's Condition."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Fn::If":
                yield str(item[0])
                yield from conditions_in(item[1:])
            elif key == "Condition" and isinstance(item, str):
                yield item
            else:
                yield from conditions_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from conditions_in(item)


def with_conditions(doc: dict[str, Any], used: set[str]) -> set[str]:
    """The conditions used and every condition they are made of."""
    found, todo = set(), list(used)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(conditions_in(doc["Conditions"][name]))
    return found


def rename(value: Any, renames: dict[tuple[str, str | None], str]) -> Any:
    """The piece of template with each root resource reference made a reference to the nested parameter for it."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and (str(value["Ref"]), None) in renames:
            return {"Ref": renames[(str(value["Ref"]), None)]}
        if (
            set(value) == {"Fn::GetAtt"}
            and (key := (str(value["Fn::GetAtt"][0]), str(value["Fn::GetAtt"][1]))) in renames
        ):
            return {"Ref": renames[key]}
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):

            def swap(found: re.Match[str]) -> str:
                name = renames.get((found.group(1), found.group(2)))
                return "${" + name + "}" if name else found.group(0)

            return {"Fn::Sub": SUB_NAME.sub(swap, value["Fn::Sub"])}
        return {key: rename(item, renames) for key, item in value.items()}
    if isinstance(value, list):
        return [rename(item, renames) for item in value]
    return value


# --- versions -------------------------------------------------------------------------------------------------


def files_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def release_of(resource: dict[str, Any], function_globals: dict[str, Any], layers: list[Path]) -> str:
    """What identifies a release of a nested function: its code, the layer's and its template properties.

    In the root, SAM names a function's version after its properties and the layer's (AutoPublishAliasAllProperties,
    PublishLambdaVersion); a nested stack receives the layer as a parameter, which SAM does not look into, so there
    the version is named after this digest (AutoPublishCodeSha256) and a new layer still publishes every function."""
    digest = hashlib.sha256(json.dumps([resource, function_globals], sort_keys=True).encode())
    for folder in [ROOT / resource["Properties"]["CodeUri"], *layers]:
        digest.update(files_digest(folder).encode())
    return digest.hexdigest()


# --- each function's log group ------------------------------------------------------------------------------


def add_log_groups(resources: dict[str, Any], retention: Any) -> None:
    for name, resource in list(resources.items()):
        if resource["Type"] != FUNCTION:
            continue
        group: dict[str, Any] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{name}"},
                "RetentionInDays": retention,
            },
            "Metadata": {
                "checkov": {
                    "skip": [
                        {
                            "id": "CKV_AWS_158",
                            "comment": "encrypted at rest by CloudWatch Logs; the logs hold no secret or card data",
                        }
                    ]
                }
            },
        }
        if "Condition" in resource:
            group["Condition"] = resource["Condition"]
        resources[f"{name}LogGroup"] = group
        resource["Properties"]["LoggingConfig"] = {"LogGroup": {"Ref": f"{name}LogGroup"}}


# --- the split -----------------------------------------------------------------------------------------------


def relocated(value: str, out: Path) -> str:
    """A path of template.yaml's (relative to the repository) as seen from a template in `out`."""
    return os.path.relpath(ROOT / value, out) + ("/" if value.endswith("/") else "")


def relocate_code(resource: dict[str, Any], out: Path) -> None:
    props = resource.get("Properties", {})
    for key in ("CodeUri", "ContentUri"):
        if isinstance(props.get(key), str) and "://" not in props[key]:
            props[key] = relocated(props[key], out)
    metadata = resource.get("Metadata", {})
    if isinstance(metadata.get("ContextPath"), str):
        metadata["ContextPath"] = relocated(metadata["ContextPath"], out)


def nested_stack(doc: dict[str, Any], group: str, names: list[str], out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The nested template of one group, and the parameters the root passes it."""
    resources = {}
    function_globals = copy.deepcopy(doc.get("Globals", {}).get("Function", {}))
    layers = [ROOT / r["Properties"]["ContentUri"] for r in doc["Resources"].values() if r["Type"] == LAYER]
    for name in names:
        resource = copy.deepcopy(doc["Resources"][name])
        resource["Properties"]["AutoPublishCodeSha256"] = release_of(resource, function_globals, layers)
        events = {k: v for k, v in resource["Properties"].pop("Events", {}).items() if v["Type"] != "Api"}
        if events:
            resource["Properties"]["Events"] = events
        relocate_code(resource, out)
        resources[name] = resource
    add_log_groups(resources, {"Ref": "LogRetentionDays"})
    body = {"Globals": {"Function": function_globals}, "Resources": resources}
    conditions = with_conditions(doc, set(conditions_in(body)))
    referenced = set(names_in(body)) | set(names_in([doc["Conditions"][c] for c in conditions]))
    parameters: dict[str, Any] = {}
    passed: dict[str, Any] = {}
    renames: dict[tuple[str, str | None], str] = {}
    for name, attribute in sorted(referenced, key=lambda item: (item[0], item[1] or "")):
        if PSEUDO.fullmatch(name) or name in resources:
            continue
        if name in doc["Parameters"]:
            declared = doc["Parameters"][name]
            is_list = declared["Type"].startswith(LIST_TYPES)
            parameters[name] = {"Type": "CommaDelimitedList" if is_list else "String"}
            if declared.get("NoEcho"):
                parameters[name]["NoEcho"] = True
            passed[name] = {"Fn::Join": [",", {"Ref": name}]} if is_list else {"Ref": name}
            continue
        root_resource = doc["Resources"].get(name)
        if root_resource is None:
            raise ValueError(f"{group}: {name} is neither a parameter nor a resource of the template")
        if root_resource["Type"] == FUNCTION and attribute is None:
            raise ValueError(f"{group}: refers to the function {name} of another stack")
        # A reference to a root resource becomes a parameter holding its value ("" when a condition leaves it out).
        parameter = name + (attribute or "").replace(".", "")
        renames[(name, attribute)] = parameter
        parameters[parameter] = {"Type": "String"}
        value: Any = {"Ref": f"{name}.{attribute}"} if attribute in ("Alias", "Version") else None
        if value is None:
            value = {"Fn::GetAtt": [name, attribute]} if attribute else {"Ref": name}
        if "Condition" in root_resource:
            value = {"Fn::If": [root_resource["Condition"], value, ""]}
        passed[parameter] = value
    nested: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": doc["Transform"],
        "Description": f"{doc['Description'].strip()} ({group}, a nested stack of the root; see deploy/split.py)",
        "Parameters": parameters,
    }
    if conditions:
        nested["Conditions"] = {name: doc["Conditions"][name] for name in sorted(conditions)}
    nested["Globals"] = rename(body["Globals"], renames)
    nested["Resources"] = rename(resources, renames)
    outputs = {}
    for name in names:
        alias: Any = {"Ref": f"{name}.Alias"}
        if "Condition" in resources[name]:
            alias = {"Fn::If": [resources[name]["Condition"], alias, ""]}
        outputs[name] = {"Description": f"{name}'s alias, which the root stack's routes invoke", "Value": alias}
    nested["Outputs"] = outputs
    return nested, passed


def route(group: str, name: str, event: dict[str, Any], default_authorizer: str) -> dict[str, Any]:
    """One operation of the API's definition, as SAM writes it for an Api event."""
    uri = (
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        f"${{{group}.Outputs.{name}}}/invocations"
    )
    authorizer = (event["Properties"].get("Auth") or {}).get("Authorizer", default_authorizer)
    return {
        "x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": {"Fn::Sub": uri}},
        "security": [{authorizer: []}],
        "responses": {},
    }


def split(doc: dict[str, Any], out: Path = OUT) -> dict[str, dict[str, Any]]:
    """File name → template: template.yaml (the root) and one per group."""
    doc = copy.deepcopy(doc)
    groups: dict[str, list[str]] = {}
    for name, resource in doc["Resources"].items():
        if (group := group_of(resource)) is not None:
            groups.setdefault(group, []).append(name)
    root = copy.deepcopy(doc)
    for names in groups.values():
        for name in names:
            del root["Resources"][name]
    resources = root["Resources"]
    for name in list(resources):
        relocate_code(resources[name], out)
    add_log_groups(resources, {"Ref": "LogRetentionDays"})
    api = resources[API]["Properties"]
    default_authorizer = api["Auth"]["DefaultAuthorizer"]
    paths: dict[str, dict[str, Any]] = {}
    stacks = {}
    for group, names in groups.items():
        nested, passed = nested_stack(doc, group, names, out)
        stacks[f"{group}.yaml"] = nested
        resources[group] = {
            "Type": "AWS::Serverless::Application",
            "Properties": {"Location": f"{group}.yaml", "Parameters": passed},
        }
        if MIGRATIONS in resources:
            resources[group]["DependsOn"] = MIGRATIONS
        for name in names:
            function = doc["Resources"][name]
            for event_name, event in api_events(function).items():
                method, path = event["Properties"]["Method"].lower(), event["Properties"]["Path"]
                operation = route(group, name, event, default_authorizer)
                key = "x-amazon-apigateway-any-method" if method == "any" else method
                condition = function.get("Condition")
                paths.setdefault(path, {})[key] = (
                    {"Fn::If": [condition, operation, {"Ref": "AWS::NoValue"}]} if condition else operation
                )
                source = re.sub(r"\{[^}]+\}", "*", path)
                permission: dict[str, Any] = {
                    "Type": "AWS::Lambda::Permission",
                    "Properties": {
                        "Action": "lambda:InvokeFunction",
                        "FunctionName": {"Fn::GetAtt": [group, f"Outputs.{name}"]},
                        "Principal": "apigateway.amazonaws.com",
                        "SourceArn": {
                            "Fn::Sub": [
                                "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                f"${{Api}}/*/{'*' if method == 'any' else method.upper()}{source}",
                                {"Api": {"Ref": API}},
                            ]
                        },
                    },
                }
                if condition:
                    permission["Condition"] = condition
                resources[f"{name}{event_name}Permission"] = permission
    if MIGRATIONS in resources:
        resources[MIGRATIONS]["Properties"]["MigrationsDigest"] = files_digest(MIGRATIONS_DIR)
    api["DefinitionBody"] = {
        "swagger": "2.0",
        "info": {"title": {"Ref": "AWS::StackName"}, "version": "1.0"},
        "paths": paths,
    }
    return {"template.yaml": root, **stacks}


def write(out: Path = OUT, source: Path = template.TEMPLATE) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, doc in split(load(source), out).items():
        path = out / file_name
        path.write_text(yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else OUT):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
