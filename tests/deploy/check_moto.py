"""The templates of deploy/cloudformation/ deployed to moto's CloudFormation.

A moto server (tests/moto/launcher.py, port 0) gets the stacks of a single-account setup in
both modes, of an organisation with a central topic (the member stacks in a second account,
through moto's multi-account STS), and of a second region. Each must end CREATE_COMPLETE with
the outputs and resources it promises; IAM roles are read back from moto's IAM and compared
with deploy/iam/ (account id and region put back as placeholders).

moto 5.2.5's CloudFormation has no AWS::SNS::TopicPolicy, AWS::SNS::Subscription nor
AWS::RDS::EventSubscription: it skips them silently and still says CREATE_COMPLETE. The
checks therefore compare the stack's resources with what the template should create, accept
exactly those types as missing (printed as notes), and then create the skipped resources
through the service APIs with the properties the template resolves to (tests/deploy/cfn.py,
with moto's physical ids), and read them back. That proves the property values are well-formed
for the APIs (moto validates filter policies), not that CloudFormation would accept them;
cfn-lint covers the properties' schema.
"""

from __future__ import annotations

import ast
import atexit
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3

import cfn
from runner import Check

ROOT = Path(__file__).resolve().parents[2]
CFN_DIR = ROOT / "deploy" / "cloudformation"
IAM_DIR = ROOT / "deploy" / "iam"
ASL = ROOT / "deploy" / "state-machine.asl.json"
LAUNCHER = ROOT / "tests" / "moto" / "launcher.py"

ACCOUNT = "123456789012"  # moto's default account: restop's own
MEMBER = "111111111111"  # a member account, reached with moto's multi-account STS
REGION = "us-east-1"
ENDPOINT = "https://restop.example.com/sns"

# What moto 5.2.5's CloudFormation skips (with only a log line). Any other missing resource fails.
MOTO_UNSUPPORTED = {"AWS::SNS::TopicPolicy", "AWS::SNS::Subscription", "AWS::RDS::EventSubscription"}


class Moto:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.skipped: dict[str, set[str]] = {}

    def start(self) -> list[str]:
        self.log = open(ROOT / "target" / "deploy-checks-moto.log", "w") if (ROOT / "target").is_dir() else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        atexit.register(self.stop)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            return [f"launcher said {line!r} (exit status {self.proc.poll()})"]
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        return []

    def stop(self) -> list[str]:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return []

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=10).read()

    def client(self, service: str, account: str = ACCOUNT, region: str = REGION):
        creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        if account != ACCOUNT:
            sts = boto3.client("sts", endpoint_url=self.url, region_name=region, **creds)
            c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/deploy", RoleSessionName="deploy-checks")["Credentials"]
            creds = {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"], "aws_session_token": c["SessionToken"]}
        return boto3.client(service, endpoint_url=self.url, region_name=region, **creds)


MOTO = Moto()


def parse_policy(doc):
    """A policy document as moto's IAM returns it: a dict, a JSON string, or (for a role's
    inline policy given as an object, once an AWS::IAM::Policy is added to the role) the
    Python repr of the dict, a moto 5.2.5 quirk."""
    if not isinstance(doc, str):
        return doc
    try:
        return json.loads(doc)
    except json.JSONDecodeError:
        return ast.literal_eval(doc)


class Deployed:
    """One stack created in moto, and the template evaluated with the same parameters."""

    def __init__(self, template_name: str, params: dict, account: str = ACCOUNT, region: str = REGION):
        self.name = template_name
        self.account, self.region = account, region
        self.problems: list[str] = []
        self.notes: list[str] = []
        cf = MOTO.client("cloudformation", account, region)
        stack_id = cf.create_stack(
            StackName=f"restop-{template_name.removesuffix('.yaml')}",
            TemplateBody=(CFN_DIR / template_name).read_text(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )["StackId"]
        stack = cf.describe_stacks(StackName=stack_id)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            self.problems.append(f"{template_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.resources = {
            r["LogicalResourceId"]: (r["ResourceType"], r["PhysicalResourceId"])
            for r in cf.list_stack_resources(StackName=stack_id)["StackResourceSummaries"]
            if r.get("LogicalResourceId")
        }
        pseudo = {**cfn.PLACEHOLDER_PSEUDO, "AWS::AccountId": account, "AWS::Region": region, "AWS::StackName": stack["StackName"]}
        refs = {name: physical for name, (_, physical) in self.resources.items()}
        attrs = {f"{name}.Arn": f"arn:aws:iam::{account}:role/{physical}" for name, (kind, physical) in self.resources.items() if kind == "AWS::IAM::Role"}
        self.model = cfn.Stack(cfn.load(CFN_DIR / template_name), params, pseudo=pseudo, refs=refs, attrs=attrs)
        expected = self.model.active_resources()
        skipped = []
        for name, res in sorted(expected.items()):
            if name in self.resources:
                continue
            if res["Type"] in MOTO_UNSUPPORTED:
                MOTO.skipped.setdefault(res["Type"], set()).add(f"{template_name}:{name}")
                skipped.append(name)
            else:
                self.problems.append(f"{template_name}: {name} ({res['Type']}) was not created")
        if skipped:
            self.notes.append(f"note: {template_name}: moto skipped {', '.join(skipped)}; made through the service APIs instead")
            self.apply_skipped()
        for name in sorted(set(self.resources) - set(expected)):
            self.problems.append(f"{template_name}: {name} created, but its condition is false")

    def expect_outputs(self, want: dict[str, str]) -> None:
        if self.outputs != want:
            self.problems.append(f"{self.name}: outputs {self.outputs}, expected {want}")
        model = self.model.outputs()
        if model != self.outputs:
            self.problems.append(f"{self.name}: moto's outputs {self.outputs} differ from the template's {model}")

    def apply_skipped(self) -> None:
        """Create what moto's CloudFormation skipped, through the service APIs, and read it back."""
        sns = MOTO.client("sns", self.account, self.region)
        rds = MOTO.client("rds", self.account, self.region)
        for name, res in self.model.active_resources().items():
            if name in self.resources:
                continue
            props = self.model.properties(name)
            if res["Type"] == "AWS::SNS::TopicPolicy":
                for topic in props["Topics"]:
                    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"]))
                    got = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
                    if got != props["PolicyDocument"]:
                        self.problems.append(f"{name}: topic policy read back as {got}")
            elif res["Type"] == "AWS::SNS::Subscription":
                attributes = {
                    "FilterPolicy": json.dumps(props["FilterPolicy"]),
                    "FilterPolicyScope": props["FilterPolicyScope"],
                    "DeliveryPolicy": json.dumps(props["DeliveryPolicy"]),
                    "RawMessageDelivery": str(props["RawMessageDelivery"]).lower(),
                }
                arn = sns.subscribe(
                    TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"],
                    Attributes=attributes, ReturnSubscriptionArn=True,
                )["SubscriptionArn"]
                got = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
                if (
                    json.loads(got["FilterPolicy"]) != props["FilterPolicy"]
                    or json.loads(got["DeliveryPolicy"]) != props["DeliveryPolicy"]
                    or got["RawMessageDelivery"] != "false"
                    or got["Protocol"] != "https"
                    or got["Endpoint"] != ENDPOINT
                ):
                    self.problems.append(f"{name}: subscription read back as {got}")
            elif res["Type"] == "AWS::RDS::EventSubscription":
                rds.create_event_subscription(
                    SubscriptionName=props["SubscriptionName"], SnsTopicArn=props["SnsTopicArn"],
                    SourceType=props["SourceType"], EventCategories=props["EventCategories"], Enabled=props["Enabled"],
                )
                (got,) = rds.describe_event_subscriptions(SubscriptionName=props["SubscriptionName"])["EventSubscriptionsList"]
                if (got["SnsTopicArn"], got["SourceType"], got["EventCategoriesList"], got["Enabled"]) != (
                    props["SnsTopicArn"], props["SourceType"], props["EventCategories"], True
                ):
                    self.problems.append(f"{name}: event subscription read back as {got}")

    def role(self, logical_id: str) -> tuple[dict, list[dict]]:
        """A role's trust policy and policy documents, as moto's IAM has them."""
        iam = MOTO.client("iam", self.account, self.region)
        name = self.resources[logical_id][1]
        trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        docs = [iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"] for p in iam.list_role_policies(RoleName=name)["PolicyNames"]]
        docs = [parse_policy(d) for d in docs]
        # moto keeps a null where Fn::If gave AWS::NoValue inside a list; CloudFormation drops it.
        trust = {**trust, "Statement": [s for s in trust["Statement"] if s is not None]}
        return trust, docs

    def role_equals_file(self, logical_id: str, file_name: str) -> None:
        _, docs = self.role(logical_id)
        placeholders = cfn.replace_strings(docs, {self.account: "ACCOUNT_ID", self.region: "REGION"})
        want = [json.loads((IAM_DIR / file_name).read_text())]
        for diff in cfn.compare_statements(want, placeholders):
            self.problems.append(f"{self.name} {logical_id} vs deploy/iam/{file_name}: {diff}")

    def result(self) -> list[str]:
        return self.problems + self.notes


def single_account_internal() -> list[str]:
    MOTO.reset()
    restop = Deployed("restop.yaml", {"Mode": "internal"})
    restop.expect_outputs({"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/restop"})
    restop.role_equals_file("RestopRole", "restop-internal-policy.json")
    trust, _ = restop.role("RestopRole")
    if [s["Principal"] for s in trust["Statement"]] != [{"Service": "ecs-tasks.amazonaws.com"}]:
        restop.problems.append(f"restop role trust: {trust}")
    events = Deployed("member-events.yaml", {"RestopEndpoint": ENDPOINT})
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:restop-rds-events"
    events.expect_outputs({"TopicArn": topic})
    rds = MOTO.client("rds")
    names = sorted(s["CustSubscriptionId"] for s in rds.describe_event_subscriptions()["EventSubscriptionsList"])
    if names != ["restop-db-cluster", "restop-db-instance"]:
        events.problems.append(f"event subscriptions {names}")
    subs = MOTO.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    if [(s["Protocol"], s["Endpoint"]) for s in subs] != [("https", ENDPOINT)]:
        events.problems.append(f"topic subscriptions {subs}")
    return restop.result() + events.result()


def single_account_step_functions() -> list[str]:
    MOTO.reset()
    restop = Deployed("restop.yaml", {"Mode": "step-functions"})
    sm_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:restop"
    restop.expect_outputs({
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/restop",
        "StateMachineArn": sm_arn,
        "StateMachineRoleArn": f"arn:aws:iam::{ACCOUNT}:role/restop-sfn",
    })
    restop.role_equals_file("RestopRole", "restop-step-functions-policy.json")
    restop.role_equals_file("StateMachineRole", "state-machine-role-policy.json")
    described = MOTO.client("stepfunctions").describe_state_machine(stateMachineArn=sm_arn)
    if json.loads(described["definition"]) != json.loads(ASL.read_text()):
        restop.problems.append("the deployed state machine's definition differs from deploy/state-machine.asl.json")
    if described["roleArn"] != f"arn:aws:iam::{ACCOUNT}:role/restop-sfn":
        restop.problems.append(f"state machine role {described['roleArn']}")
    trust, _ = restop.role("StateMachineRole")
    if [s["Condition"] for s in trust["Statement"]] != [{
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:*"},
    }]:
        restop.problems.append(f"state machine role trust {trust}")
    # The state machine's role may assume member roles: the member role trusts it.
    member = Deployed("member-role.yaml", {
        "RestopRoleArn": restop.outputs["RoleArn"], "StateMachineRoleArn": restop.outputs["StateMachineRoleArn"],
    })
    member.expect_outputs({"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/restop-member"})
    member.role_equals_file("MemberRole", "member-role-policy.json")
    trust, _ = member.role("MemberRole")
    principals = sorted(s["Principal"]["AWS"] for s in trust["Statement"])
    if principals != sorted([restop.outputs["RoleArn"], restop.outputs["StateMachineRoleArn"]]):
        member.problems.append(f"member role trusts {principals}")
    MOTO.reset()
    existing = Deployed("restop.yaml", {"Mode": "step-functions", "CreateStateMachine": "no"})
    existing.expect_outputs({"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/restop"})
    existing.role_equals_file("RestopRole", "restop-step-functions-policy.json")
    return restop.result() + member.result() + existing.result()


def organisation_with_central_topic() -> list[str]:
    MOTO.reset()
    central = Deployed("central-topic.yaml", {"RestopEndpoint": ENDPOINT, "MemberAccountIds": f"{MEMBER},{ACCOUNT}"})
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:restop-rds-events"
    central.expect_outputs({"TopicArn": topic})
    policy = json.loads(MOTO.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    if policy["Statement"][0]["Condition"] != {"StringEquals": {"aws:SourceAccount": [MEMBER, ACCOUNT]}}:
        central.problems.append(f"central topic policy {policy}")
    restop_role = f"arn:aws:iam::{ACCOUNT}:role/restop"
    events = Deployed("member-events.yaml", {"CentralTopicArn": topic}, account=MEMBER)
    events.expect_outputs({"TopicArn": topic})
    if MOTO.client("sns", MEMBER).list_topics()["Topics"]:
        events.problems.append("central topic mode created a topic in the member account")
    subs = MOTO.client("rds", MEMBER).describe_event_subscriptions()["EventSubscriptionsList"]
    if sorted((s["SourceType"], s["SnsTopicArn"]) for s in subs) != [("db-cluster", topic), ("db-instance", topic)]:
        events.problems.append(f"member event subscriptions {subs}")
    member = Deployed(
        "member-role.yaml",
        {"RestopRoleArn": restop_role, "ExternalId": "restop-x", "TagKey": "team:stop", "TagValue": "always"},
        account=MEMBER,
    )
    member.expect_outputs({"RoleArn": f"arn:aws:iam::{MEMBER}:role/restop-member"})
    trust, docs = member.role("MemberRole")
    if [(s["Principal"], s.get("Condition")) for s in trust["Statement"]] != [
        ({"AWS": restop_role}, {"StringEquals": {"sts:ExternalId": "restop-x"}})
    ]:
        member.problems.append(f"member role trust {trust}")
    conditions = [s.get("Condition") for d in docs for s in d["Statement"] if s["Action"] in ("rds:StopDBInstance", "rds:StopDBCluster")]
    if conditions != [{"StringEqualsIgnoreCase": {"aws:ResourceTag/team:stop": "always"}}] * 2:
        member.problems.append(f"member role stop conditions {conditions}")
    resources = {r for d in docs for s in d["Statement"] for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])}
    if any(ACCOUNT in r for r in resources) or f"arn:aws:rds:*:{MEMBER}:db:*" not in resources:
        member.problems.append(f"member role resources {sorted(resources)}")
    return central.result() + events.result() + member.result()


def another_region() -> list[str]:
    MOTO.reset()
    events = Deployed("member-events.yaml", {"RestopEndpoint": ENDPOINT, "TopicName": "restop-events-eu"}, region="eu-west-1")
    events.expect_outputs({"TopicArn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:restop-events-eu"})
    restop = Deployed("restop.yaml", {"Mode": "step-functions"}, region="eu-west-1")
    restop.role_equals_file("RestopRole", "restop-step-functions-policy.json")
    if not restop.outputs.get("StateMachineArn", "").startswith("arn:aws:states:eu-west-1:"):
        restop.problems.append(f"state machine ARN {restop.outputs}")
    return events.result() + restop.result()


def unsupported_types_report() -> list[str]:
    if not MOTO.skipped:
        return ["note: moto's CloudFormation deployed every resource type of the kit"]
    return [f"note: moto could not deploy {kind}: {', '.join(sorted(where))}" for kind, where in sorted(MOTO.skipped.items())]


def checks() -> list[Check]:
    return [
        Check("moto", "start tests/moto/launcher.py --port 0", MOTO.start),
        Check("moto", "single account, internal mode: restop.yaml + member-events.yaml", single_account_internal),
        Check("moto", "single account, Step Functions mode: restop.yaml (+ without state machine) + member-role.yaml", single_account_step_functions),
        Check("moto", f"organisation: central-topic.yaml here, member-events.yaml + member-role.yaml in account {MEMBER}", organisation_with_central_topic),
        Check("moto", "eu-west-1: member-events.yaml and restop.yaml", another_region),
        Check("moto", "resource types moto's CloudFormation skipped", unsupported_types_report),
        Check("moto", "stop the launcher", MOTO.stop),
    ]
