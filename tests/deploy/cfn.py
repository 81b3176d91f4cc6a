"""A small CloudFormation evaluator for the checks of deploy/cloudformation/.

Templates are read with cfn-lint's own loader (cfnlint.decode), which turns the short forms
(!Sub, !If, ...) into the long ones. `Stack` then evaluates a template for given parameters:
conditions, which resources exist, and their properties with Ref, Fn::Sub, Fn::If, Fn::Join,
Fn::Split, Fn::Select, Fn::GetAtt and AWS::NoValue resolved. Resources resolve to placeholders
(`<Ref Name>`, `<GetAtt Name.Attr>`) unless given real values (from a deployed stack).

Only the intrinsics the kit uses are implemented; anything else raises, so a new one cannot
slip through unevaluated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

NO_VALUE = object()

# Pseudo parameters for comparing with deploy/iam/*.json, whose placeholders are these.
PLACEHOLDER_PSEUDO = {
    "AWS::AccountId": "ACCOUNT_ID",
    "AWS::Region": "REGION",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "STACK_NAME",
}


def load(path: Path) -> dict:
    template, matches = decode(str(path))
    if matches:
        raise ValueError(f"{path}: {[str(m) for m in matches]}")
    return template


def plain(node: Any) -> Any:
    """cfn-lint's node types as plain dicts, lists and strings."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


class Stack:
    def __init__(
        self,
        template: dict,
        parameters: dict[str, Any] | None = None,
        pseudo: dict[str, str] | None = None,
        refs: dict[str, str] | None = None,
        attrs: dict[str, str] | None = None,
    ):
        self.template = plain(template)
        self.pseudo = dict(PLACEHOLDER_PSEUDO if pseudo is None else pseudo)
        self.refs = refs or {}
        self.attrs = attrs or {}
        self.params: dict[str, Any] = {}
        given = dict(parameters or {})
        for name, spec in self.template.get("Parameters", {}).items():
            if name in given:
                value = given.pop(name)
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise ValueError(f"parameter {name} has no default and was not given")
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            self.params[name] = value
        if given:
            raise ValueError(f"unknown parameters {sorted(given)}")
        self._conditions: dict[str, bool] = {}

    # -- conditions and resources --------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def rule_failures(self) -> list[str]:
        failures = []
        for name, rule in self.template.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self.resolve(assertion["Assert"]):
                    failures.append(f"{name}: {assertion.get('AssertDescription', '')}")
        return failures

    def active_resources(self) -> dict[str, dict]:
        return {
            name: res
            for name, res in self.template["Resources"].items()
            if "Condition" not in res or self.condition(res["Condition"])
        }

    def properties(self, name: str) -> dict:
        return self.resolve(self.template["Resources"][name].get("Properties", {}))

    def outputs(self) -> dict[str, Any]:
        return {
            name: self.resolve(out["Value"])
            for name, out in self.template.get("Outputs", {}).items()
            if "Condition" not in out or self.condition(out["Condition"])
        }

    # -- intrinsic functions -------------------------------------------------------------

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.template["Resources"]:
            return self.refs.get(name, f"<Ref {name}>")
        raise KeyError(f"Ref to unknown {name}")

    def get_att(self, name: str, attr: str) -> Any:
        if name not in self.template["Resources"]:
            raise KeyError(f"GetAtt of unknown resource {name}")
        return self.attrs.get(f"{name}.{attr}", f"<GetAtt {name}.{attr}>")

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def one(match: re.Match) -> str:
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(variables[inner])
            if "." in inner and inner.split(".", 1)[0] in self.template["Resources"]:
                return str(self.get_att(*inner.split(".", 1)))
            value = self.ref(inner)
            if not isinstance(value, str):
                raise ValueError(f"Fn::Sub of non-string ${{{inner}}}")
            return value

        return re.sub(r"\$\{([^}]*)\}", one, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in arg)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in arg)
            if key == "Fn::Join":
                return arg[0].join(self.resolve(arg[1]))
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::GetAtt":
                name, attr = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(name, attr)
            if key.startswith("Fn::"):
                raise NotImplementedError(f"{key} is not evaluated by tests/deploy/cfn.py")
        out = {}
        for key, value in node.items():
            value = self.resolve(value)
            if value is not NO_VALUE:
                out[key] = value
        return out


# -- IAM ---------------------------------------------------------------------------------


def policy_document(doc: Any) -> dict:
    """A policy document as a dict (templates may hold it as a JSON string)."""
    return json.loads(doc) if isinstance(doc, str) else doc


def role_policies(stack: Stack) -> dict[str, list[dict]]:
    """Logical id of every active IAM role -> the policy documents it gets from the stack
    (inline `Policies` and AWS::IAM::Policy resources that name it)."""
    active = stack.active_resources()
    roles: dict[str, list[dict]] = {}
    for name, res in active.items():
        if res["Type"] == "AWS::IAM::Role":
            props = stack.properties(name)
            roles[name] = [policy_document(p["PolicyDocument"]) for p in props.get("Policies", [])]
    for name, res in active.items():
        if res["Type"] == "AWS::IAM::Policy":
            props = stack.properties(name)
            for role_ref in props.get("Roles", []):
                match = re.fullmatch(r"<Ref (\w+)>", role_ref)
                if not match or match.group(1) not in roles:
                    raise ValueError(f"{name}: Roles must Ref a role of the stack, got {role_ref!r}")
                roles[match.group(1)].append(policy_document(props["PolicyDocument"]))
    return roles


def _as_tuple(value: Any) -> tuple:
    return tuple(sorted(value if isinstance(value, list) else [value]))


def normalise_statement(statement: dict) -> dict:
    out: dict[str, Any] = {"Effect": statement["Effect"]}
    for key in ("Action", "NotAction", "Resource", "NotResource"):
        if key in statement:
            out[key] = _as_tuple(statement[key])
    if "Principal" in statement:
        principal = statement["Principal"]
        out["Principal"] = principal if principal == "*" else {k: _as_tuple(v) for k, v in principal.items()}
    if "Condition" in statement:
        out["Condition"] = {
            op: {key: _as_tuple(value) for key, value in block.items()}
            for op, block in statement["Condition"].items()
        }
    unknown = set(statement) - {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "Condition"}
    if unknown:
        out["unknown keys"] = sorted(unknown)
    return out


def statements_by_sid(documents: list[dict]) -> tuple[dict[str, dict], list[str]]:
    """Sid -> normalised statement over several documents; and the problems found (a missing
    or repeated Sid, a missing Version)."""
    problems = []
    result: dict[str, dict] = {}
    for doc in documents:
        if doc.get("Version") != "2012-10-17":
            problems.append(f"policy Version is {doc.get('Version')!r}, not 2012-10-17")
        statements = doc["Statement"]
        for statement in statements if isinstance(statements, list) else [statements]:
            sid = statement.get("Sid")
            if not sid:
                problems.append(f"statement without Sid: {statement}")
                continue
            if sid in result:
                problems.append(f"Sid {sid} appears twice")
            result[sid] = normalise_statement(statement)
    return result, problems


def compare_statements(expected: list[dict], actual: list[dict]) -> list[str]:
    """Differences between two sets of policy documents, statement by statement (by Sid)."""
    want, problems_want = statements_by_sid(expected)
    got, problems_got = statements_by_sid(actual)
    diffs = [f"expected side: {p}" for p in problems_want] + [f"actual side: {p}" for p in problems_got]
    for sid in sorted(set(want) - set(got)):
        diffs.append(f"statement {sid} missing")
    for sid in sorted(set(got) - set(want)):
        diffs.append(f"statement {sid} not expected")
    for sid in sorted(set(want) & set(got)):
        if want[sid] != got[sid]:
            for key in sorted(set(want[sid]) | set(got[sid])):
                if want[sid].get(key) != got[sid].get(key):
                    diffs.append(f"statement {sid} {key}: expected {want[sid].get(key)}, got {got[sid].get(key)}")
    return diffs


def replace_strings(node: Any, replacements: dict[str, str]) -> Any:
    """Every string of a JSON value with the given substrings replaced (real account id and
    region back to the placeholders of deploy/iam/)."""
    if isinstance(node, dict):
        return {k: replace_strings(v, replacements) for k, v in node.items()}
    if isinstance(node, list):
        return [replace_strings(v, replacements) for v in node]
    if isinstance(node, str):
        for old, new in replacements.items():
            node = node.replace(old, new)
    return node
