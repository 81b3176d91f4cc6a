"""Static checks of deploy/cloudformation/: cfn-lint, IAM statements equal to deploy/iam/,
the embedded state machine equal to deploy/state-machine.asl.json, the SNS subscription
settings (filter, delivery policy arithmetic), StackSet-readiness, and the Rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cfn
from runner import Check

ROOT = Path(__file__).resolve().parents[2]
CFN_DIR = ROOT / "deploy" / "cloudformation"
IAM_DIR = ROOT / "deploy" / "iam"
ASL = ROOT / "deploy" / "state-machine.asl.json"
TEMPLATES = sorted(CFN_DIR.glob("*.yaml"))

# cfn-lint with its informational rules too, for every partition the templates claim to serve.
LINT_REGIONS = ["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"]

EVENT_IDS = ["RDS-EVENT-0154", "RDS-EVENT-0153", "RDS-EVENT-0088", "RDS-EVENT-0151"]
SNS_HTTP_RETRY_LIMIT_SECONDS = 3600
RESTOP_ROLE_ARN = "arn:aws:iam::222222222222:role/restop"


def iam_file(name: str) -> list[dict]:
    return [json.loads((IAM_DIR / name).read_text())]


def template(name: str) -> dict:
    return cfn.load(CFN_DIR / name)


def lint(path: Path):
    def run() -> list[str]:
        from cfnlint.api import ManualArgs, lint_file

        matches = lint_file(path, config=ManualArgs(regions=LINT_REGIONS, include_checks=["I"]))
        return [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches]

    return run


def principal_equals_file(template_name: str, parameters: dict, role: str, file_name: str):
    def run() -> list[str]:
        stack = cfn.Stack(template(template_name), parameters)
        roles = cfn.role_policies(stack)
        if role not in roles:
            return [f"role {role} not created with {parameters}"]
        return cfn.compare_statements(iam_file(file_name), roles[role])

    return run


def every_iam_file_is_used() -> list[str]:
    used = {f for _, _, _, f in IAM_COMPARISONS}
    return [f"deploy/iam/{p.name} is compared with no template" for p in sorted(IAM_DIR.glob("*.json")) if p.name not in used]


# (template, parameters, role logical id, file): the file must equal the role's statements.
IAM_COMPARISONS = [
    ("member-role.yaml", {"RestopRoleArn": RESTOP_ROLE_ARN}, "MemberRole", "member-role-policy.json"),
    ("restop.yaml", {"Mode": "internal"}, "RestopRole", "restop-internal-policy.json"),
    ("restop.yaml", {"Mode": "step-functions"}, "RestopRole", "restop-step-functions-policy.json"),
    ("restop.yaml", {"Mode": "step-functions"}, "StateMachineRole", "state-machine-role-policy.json"),
]


def tag_parameters_reach_conditions() -> list[str]:
    problems = []
    cases = [
        ("member-role.yaml", {"RestopRoleArn": RESTOP_ROLE_ARN}, "MemberRole"),
        ("restop.yaml", {"Mode": "internal"}, "RestopRole"),
        ("restop.yaml", {"Mode": "step-functions"}, "StateMachineRole"),
    ]
    for name, params, role in cases:
        stack = cfn.Stack(template(name), {**params, "TagKey": "team:stop", "TagValue": "always"})
        stops = [
            s
            for doc in cfn.role_policies(stack)[role]
            for s in doc["Statement"]
            if s["Action"] in ("rds:StopDBInstance", "rds:StopDBCluster")
        ]
        if len(stops) != 2:
            problems.append(f"{name} {role}: {len(stops)} stop statements, expected 2")
        for s in stops:
            if s.get("Condition") != {"StringEqualsIgnoreCase": {"aws:ResourceTag/team:stop": "always"}}:
                problems.append(f"{name} {role} {s['Sid']}: condition {s.get('Condition')}")
    return problems


def trust_policies() -> list[str]:
    problems = []
    # member-role.yaml: restop's role, with the external id only when given; the state
    # machine's role only when given, never with the external id.
    t = template("member-role.yaml")
    sm_role = "arn:aws:iam::222222222222:role/restop-sfn"
    for params, want in [
        ({}, {"TrustRestop": ({"AWS": RESTOP_ROLE_ARN}, None)}),
        ({"ExternalId": "x-1"}, {"TrustRestop": ({"AWS": RESTOP_ROLE_ARN}, {"StringEquals": {"sts:ExternalId": "x-1"}})}),
        (
            {"ExternalId": "x-1", "StateMachineRoleArn": sm_role},
            {
                "TrustRestop": ({"AWS": RESTOP_ROLE_ARN}, {"StringEquals": {"sts:ExternalId": "x-1"}}),
                "TrustRestopStateMachine": ({"AWS": sm_role}, None),
            },
        ),
    ]:
        stack = cfn.Stack(t, {"RestopRoleArn": RESTOP_ROLE_ARN, **params})
        doc = stack.properties("MemberRole")["AssumeRolePolicyDocument"]
        got = {s["Sid"]: (s["Principal"], s.get("Condition")) for s in doc["Statement"]}
        if got != want or any(s["Action"] != "sts:AssumeRole" for s in doc["Statement"]):
            problems.append(f"member-role.yaml with {params}: trust {doc['Statement']}")
    # restop.yaml: the service and/or the principal; the state machine's role: Step Functions
    # of this account and region only.
    t = template("restop.yaml")
    for params, want in [
        ({}, {"TrustTheService": {"Service": "ecs-tasks.amazonaws.com"}}),
        ({"TrustedService": "", "TrustedPrincipalArn": RESTOP_ROLE_ARN}, {"TrustThePrincipal": {"AWS": RESTOP_ROLE_ARN}}),
        (
            {"TrustedPrincipalArn": RESTOP_ROLE_ARN},
            {"TrustTheService": {"Service": "ecs-tasks.amazonaws.com"}, "TrustThePrincipal": {"AWS": RESTOP_ROLE_ARN}},
        ),
    ]:
        doc = cfn.Stack(t, params).properties("RestopRole")["AssumeRolePolicyDocument"]
        got = {s["Sid"]: s["Principal"] for s in doc["Statement"]}
        if got != want:
            problems.append(f"restop.yaml with {params}: trust {doc['Statement']}")
    doc = cfn.Stack(t, {"Mode": "step-functions"}).properties("StateMachineRole")["AssumeRolePolicyDocument"]
    want = [
        {
            "Sid": "TrustStepFunctions",
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": "ACCOUNT_ID"},
                "ArnLike": {"aws:SourceArn": "arn:aws:states:REGION:ACCOUNT_ID:stateMachine:*"},
            },
        }
    ]
    if doc["Statement"] != want:
        problems.append(f"state machine role trust: {doc['Statement']}")
    return problems


def modes_create_the_right_resources() -> list[str]:
    t = template("restop.yaml")
    problems = []
    for params, want in [
        ({"Mode": "internal"}, {"RestopRole", "InternalPolicy", "InternalStopPolicy"}),
        ({"Mode": "step-functions"}, {"RestopRole", "StepFunctionsPolicy", "StateMachineRole", "StateMachine"}),
        ({"Mode": "step-functions", "CreateStateMachine": "no"}, {"RestopRole", "StepFunctionsPolicy"}),
        ({"Mode": "internal", "CreateStateMachine": "yes"}, {"RestopRole", "InternalPolicy", "InternalStopPolicy"}),
    ]:
        got = set(cfn.Stack(t, params).active_resources())
        if got != want:
            problems.append(f"restop.yaml {params}: resources {sorted(got)}, expected {sorted(want)}")
    t = template("member-events.yaml")
    for params, want in [
        (
            {"RestopEndpoint": "https://restop.example.com/sns"},
            {"Topic", "TopicPolicy", "InstanceEvents", "ClusterEvents", "RestopSubscription"},
        ),
        (
            {"CentralTopicArn": "arn:aws:sns:eu-west-1:222222222222:restop-rds-events"},
            {"InstanceEvents", "ClusterEvents"},
        ),
    ]:
        got = set(cfn.Stack(t, params).active_resources())
        if got != want:
            problems.append(f"member-events.yaml {params}: resources {sorted(got)}, expected {sorted(want)}")
    return problems


def rules_refuse_incomplete_parameters() -> list[str]:
    problems = []
    for name, params, should_fail in [
        ("member-events.yaml", {}, True),
        ("member-events.yaml", {"RestopEndpoint": "https://restop.example.com/sns"}, False),
        ("member-events.yaml", {"CentralTopicArn": "arn:aws:sns:us-east-1:222222222222:restop-rds-events"}, False),
        ("restop.yaml", {}, False),
        ("restop.yaml", {"TrustedService": ""}, True),
        ("restop.yaml", {"TrustedService": "", "TrustedPrincipalArn": RESTOP_ROLE_ARN}, False),
    ]:
        failures = cfn.Stack(template(name), params).rule_failures()
        if bool(failures) != should_fail:
            problems.append(f"{name} {params}: rule failures {failures}, expected {'some' if should_fail else 'none'}")
    return problems


def state_machine_definition_equals_file() -> list[str]:
    stack = cfn.Stack(template("restop.yaml"), {"Mode": "step-functions"})
    embedded = stack.properties("StateMachine")["DefinitionString"]
    try:
        got = json.loads(embedded)
    except json.JSONDecodeError as e:
        return [f"DefinitionString is not JSON: {e}"]
    if got != json.loads(ASL.read_text()):
        return ["restop.yaml's DefinitionString differs from deploy/state-machine.asl.json: run tests/deploy/sync_state_machine.py"]
    return []


def https_subscriptions() -> list[tuple[str, dict]]:
    return [
        ("member-events.yaml", cfn.Stack(template("member-events.yaml"), {"RestopEndpoint": "https://r.example/sns"}).properties("RestopSubscription")),
        ("central-topic.yaml", cfn.Stack(template("central-topic.yaml"), {"RestopEndpoint": "https://r.example/sns", "MemberAccountIds": "222222222222"}).properties("RestopSubscription")),
    ]


def retry_bounds(policy: dict) -> tuple[int, int]:
    """Least and greatest total retry time of an SNS healthyRetryPolicy: each backoff-phase
    delay lies between minDelayTarget and maxDelayTarget whatever the backoff function."""
    p = policy["healthyRetryPolicy"]
    backoff = p["numRetries"] - p.get("numNoDelayRetries", 0) - p.get("numMinDelayRetries", 0) - p.get("numMaxDelayRetries", 0)
    fixed = p.get("numMinDelayRetries", 0) * p["minDelayTarget"] + p.get("numMaxDelayRetries", 0) * p["maxDelayTarget"]
    return fixed + backoff * p["minDelayTarget"], fixed + backoff * p["maxDelayTarget"]


def subscription_settings() -> list[str]:
    problems = []
    subs = https_subscriptions()
    for name, props in subs:
        if props["Protocol"] != "https":
            problems.append(f"{name}: protocol {props['Protocol']}")
        if props.get("RawMessageDelivery") is not False:
            problems.append(f"{name}: RawMessageDelivery must be false (a raw body carries no signature)")
        if props.get("FilterPolicy") != {"EventID": EVENT_IDS}:
            problems.append(f"{name}: FilterPolicy {props.get('FilterPolicy')}")
        if props.get("FilterPolicyScope", "MessageAttributes") != "MessageAttributes":
            problems.append(f"{name}: FilterPolicyScope {props.get('FilterPolicyScope')}")
        p = props["DeliveryPolicy"]["healthyRetryPolicy"]
        least, most = retry_bounds(props["DeliveryPolicy"])
        backoff = p["numRetries"] - p["numNoDelayRetries"] - p["numMinDelayRetries"] - p["numMaxDelayRetries"]
        if backoff < 0 or p["numRetries"] > 100:
            problems.append(f"{name}: retry phases do not add up: {p}")
        if not 1 <= p["minDelayTarget"] <= p["maxDelayTarget"] <= SNS_HTTP_RETRY_LIMIT_SECONDS:
            problems.append(f"{name}: delays {p['minDelayTarget']}..{p['maxDelayTarget']}")
        if most > SNS_HTTP_RETRY_LIMIT_SECONDS:
            problems.append(f"{name}: retries may last {most} s, over SNS's {SNS_HTTP_RETRY_LIMIT_SECONDS} s")
        # "The whole hour": one more backoff retry must not fit under the bound any more.
        if most + p["maxDelayTarget"] <= SNS_HTTP_RETRY_LIMIT_SECONDS:
            problems.append(f"{name}: retries last at most {most} s; the hour allows more")
        if p.get("backoffFunction") != "exponential":
            problems.append(f"{name}: backoffFunction {p.get('backoffFunction')}")
        if (least, most) != (2580, 3420):
            problems.append(f"{name}: bounds {least}..{most} s, but the comments and deploy/README.md say 2580..3420 s")
    if subs[0][1]["DeliveryPolicy"] != subs[1][1]["DeliveryPolicy"] or subs[0][1]["FilterPolicy"] != subs[1][1]["FilterPolicy"]:
        problems.append("member-events.yaml and central-topic.yaml subscribe with different policies")
    return problems


def topic_policies() -> list[str]:
    problems = []
    stack = cfn.Stack(template("member-events.yaml"), {"RestopEndpoint": "https://r.example/sns"})
    want = {
        "Effect": "Allow",
        "Principal": {"Service": "events.rds.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": "<Ref Topic>",
    }
    deny_others = {
        "Sid": "NoOtherPublishers",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sns:Publish",
        "Resource": "<Ref Topic>",
        "Condition": {"StringNotEquals": {"aws:PrincipalServiceName": "events.rds.amazonaws.com"}},
    }
    doc = stack.properties("TopicPolicy")["PolicyDocument"]
    (statement, deny) = doc["Statement"]
    if deny != deny_others:
        problems.append(f"member-events.yaml topic policy lets others publish: {deny}")
    es = "arn:aws:rds:REGION:ACCOUNT_ID:es:restop"
    if {k: statement.get(k) for k in want} != want or statement.get("Condition") != {
        "StringEquals": {"aws:SourceAccount": "ACCOUNT_ID"},
        "ArnEquals": {"aws:SourceArn": [f"{es}-db-instance", f"{es}-db-cluster"]},
    }:
        problems.append(f"member-events.yaml topic policy: {statement}")
    stack = cfn.Stack(template("central-topic.yaml"), {"RestopEndpoint": "https://r.example/sns", "MemberAccountIds": "111111111111,222222222222"})
    (statement, deny) = stack.properties("TopicPolicy")["PolicyDocument"]["Statement"]
    if deny != deny_others:
        problems.append(f"central-topic.yaml topic policy lets others publish: {deny}")
    es = "arn:aws:rds:REGION:*:es:restop"
    if {k: statement.get(k) for k in want} != want or statement.get("Condition") != {
        "StringEquals": {"aws:SourceAccount": ["111111111111", "222222222222"]},
        "ArnLike": {"aws:SourceArn": [f"{es}-db-instance", f"{es}-db-cluster"]},
    }:
        problems.append(f"central-topic.yaml topic policy: {statement}")
    # SHA256withRSA, so that restop may refuse version 1 (RESTOP_SNS_MIN_SIGNATURE_VERSION=2).
    for name, params in [
        ("member-events.yaml", {"RestopEndpoint": "https://r.example/sns"}),
        ("central-topic.yaml", {"RestopEndpoint": "https://r.example/sns", "MemberAccountIds": "111111111111"}),
    ]:
        version = cfn.Stack(template(name), params).properties("Topic").get("SignatureVersion")
        if version != "2":
            problems.append(f"{name}: topic SignatureVersion {version!r}, not '2'")
    for name, params in [
        ("member-events.yaml", {"RestopEndpoint": "https://r.example/sns"}),
        ("member-events.yaml", {"CentralTopicArn": "arn:aws:sns:us-east-1:222222222222:central"}),
    ]:
        stack = cfn.Stack(template(name), params)
        for res in ("InstanceEvents", "ClusterEvents"):
            props = stack.properties(res)
            want_topic = params.get("CentralTopicArn", "<Ref Topic>")
            want_type = "db-instance" if res == "InstanceEvents" else "db-cluster"
            if (props["SnsTopicArn"], props["SourceType"], props["EventCategories"], props["Enabled"]) != (want_topic, want_type, ["notification"], True):
                problems.append(f"{name} {params} {res}: {props}")
    return problems


def stackset_ready() -> list[str]:
    """No account id, region or partition written into a template: StackSets deploy the same
    template everywhere (only the documentation's examples may name them)."""
    problems = []
    for path in TEMPLATES:
        text = path.read_text()
        if path.name == "restop.yaml":
            # The embedded state machine speaks of its own ARNs ("arn:aws:states:::aws-sdk:rds:...").
            text = text.split("DefinitionString: |", 1)[0]
        for lineno, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, what in [
                (r"\b\d{12}\b", "an account id"),
                (r"arn:aws(-cn|-us-gov)?:", "a partition"),
                (r"\b(us|eu|ap|sa|ca|me|af|il|mx|cn)-(gov-)?[a-z]+-\d\b", "a region"),
            ]:
                if re.search(pattern, code) and "AllowedPattern" not in code:
                    problems.append(f"{path.name}:{lineno}: {what}: {line.strip()}")
    return problems


def checks() -> list[Check]:
    out = [Check("cfn-lint", f"deploy/cloudformation/{p.name} (regions {', '.join(LINT_REGIONS)})", lint(p)) for p in TEMPLATES]
    out += [
        Check("iam", f"{t} {params} role {role} == deploy/iam/{f}", principal_equals_file(t, params, role, f))
        for t, params, role, f in IAM_COMPARISONS
    ]
    out += [
        Check("iam", "every deploy/iam/*.json is compared with a template", every_iam_file_is_used),
        Check("iam", "TagKey / TagValue parameters reach the stop conditions", tag_parameters_reach_conditions),
        Check("iam", "trust policies (external id, state machine role, trusted service/principal)", trust_policies),
        Check("templates", "restop.yaml DefinitionString == deploy/state-machine.asl.json", state_machine_definition_equals_file),
        Check("templates", "modes and central topic mode create the right resources", modes_create_the_right_resources),
        Check("templates", "Rules refuse incomplete parameters", rules_refuse_incomplete_parameters),
        Check("templates", "HTTPS subscriptions: filter, raw delivery off, delivery policy <= 3600 s", subscription_settings),
        Check("templates", "topic policies and RDS event subscriptions", topic_policies),
        Check("templates", "StackSet-ready: no account id, region or partition written in", stackset_ready),
    ]
    return out
