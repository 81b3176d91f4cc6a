"""The templates of deploy/cloudformation/ deployed to moto's CloudFormation.

A moto server (tests/moto/launcher.py, port 0) gets the stacks of a single-account setup in
both modes, of an organisation with a central topic (the member stacks in a second account,
through moto's multi-account STS), and of a second region. Each must end CREATE_COMPLETE with
the outputs and resources it promises; IAM roles are read back from moto's IAM and compared
with deploy/iam/ (account id and region put back as placeholders).

moto 5.2.5's CloudFormation has no AWS::SNS::TopicPolicy, AWS::SNS::Subscription,
AWS::RDS::EventSubscription, AWS::SecretsManager::Secret nor AWS::EC2::SecurityGroupEgress:
it skips them silently and still says CREATE_COMPLETE. The
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
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions

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
MOTO_UNSUPPORTED = {
    "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription", "AWS::RDS::EventSubscription",
    "AWS::SecretsManager::Secret", "AWS::EC2::SecurityGroupEgress",
}


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
        self.secret_values: dict[str, str] = {}
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
        attrs.update({f"{name}.GroupId": physical for name, (kind, physical) in self.resources.items() if kind == "AWS::EC2::SecurityGroup"})
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
        secrets = MOTO.client("secretsmanager", self.account, self.region)
        ec2 = MOTO.client("ec2", self.account, self.region)

        def resolve_secrets(text: str) -> str:
            return re.sub(
                r"\{\{resolve:secretsmanager:([^}]+)\}\}",
                lambda m: secrets.get_secret_value(SecretId=m.group(1))["SecretString"],
                text,
            )

        # Generated secrets first: the others are built from them.
        skipped = sorted(
            (name for name in self.model.active_resources() if name not in self.resources),
            key=lambda name: "GenerateSecretString" not in self.model.template["Resources"][name].get("Properties", {}),
        )
        for name in skipped:
            res = self.model.template["Resources"][name]
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
            elif res["Type"] == "AWS::SecretsManager::Secret":
                if "GenerateSecretString" in props:
                    generate = props["GenerateSecretString"]
                    value = secrets.get_random_password(
                        PasswordLength=generate["PasswordLength"], ExcludePunctuation=generate["ExcludePunctuation"]
                    )["RandomPassword"]
                else:
                    value = resolve_secrets(props["SecretString"])
                arn = secrets.create_secret(Name=f"{self.model.pseudo['AWS::StackName']}-{name}", SecretString=value)["ARN"]
                self.model.refs[name] = arn  # Ref of a secret is its ARN
                self.secret_values[name] = secrets.get_secret_value(SecretId=arn)["SecretString"]
            elif res["Type"] == "AWS::EC2::SecurityGroupEgress":
                permission = {
                    "IpProtocol": props["IpProtocol"], "FromPort": props["FromPort"], "ToPort": props["ToPort"],
                    "UserIdGroupPairs": [{"GroupId": props["DestinationSecurityGroupId"]}],
                }
                ec2.authorize_security_group_egress(GroupId=props["GroupId"], IpPermissions=[permission])
                (group,) = ec2.describe_security_groups(GroupIds=[props["GroupId"]])["SecurityGroups"]
                if not any(
                    p.get("FromPort") == props["FromPort"] and [g["GroupId"] for g in p.get("UserIdGroupPairs", [])] == [props["DestinationSecurityGroupId"]]
                    for p in group["IpPermissionsEgress"]
                ):
                    self.problems.append(f"{name}: egress read back as {group['IpPermissionsEgress']}")
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
    es = f"arn:aws:rds:{REGION}:*:es:restop"
    if policy["Statement"][0]["Condition"] != {
        "StringEquals": {"aws:SourceAccount": [MEMBER, ACCOUNT]},
        "ArnLike": {"aws:SourceArn": [f"{es}-db-instance", f"{es}-db-cluster"]},
    }:
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


def service_network() -> dict[str, str]:
    """A VPC with two public and two private subnets, a certificate and a hosted zone: what
    service.yaml's parameters name."""
    ec2 = MOTO.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{'ab'[i % 2]}")["Subnet"]["SubnetId"]
        for i in range(4)
    ]
    cert = MOTO.client("acm").request_certificate(DomainName="restop.example.com", ValidationMethod="DNS")["CertificateArn"]
    zone = MOTO.client("route53").create_hosted_zone(Name="example.com", CallerReference="deploy-checks")["HostedZone"]["Id"]
    return {
        "VpcId": vpc,
        "PublicSubnetIds": ",".join(subnets[:2]),
        "PrivateSubnetIds": ",".join(subnets[2:]),
        "CertificateArn": cert,
        "HostedZoneId": zone.rsplit("/", 1)[-1],
    }


def service_existing_database() -> list[str]:
    """service.yaml with Database=existing, AdminCidr, MetricsCidr and a hosted zone; read back
    from moto's ECS, ELBv2, EC2, CloudWatch Logs, Route 53 and Secrets Manager."""
    MOTO.reset()
    url_secret = MOTO.client("secretsmanager").create_secret(
        Name="restop-database-url", SecretString="postgres://restop:pw@db.internal:5432/restop"
    )["ARN"]
    params = {
        **service_network(),
        "ImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/restop:0.1.0",
        "DomainName": "restop.example.com",
        "TaskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/restop",
        "TopicArns": f"arn:aws:sns:{REGION}:{ACCOUNT}:restop-rds-events",
        "AdminCidr": "203.0.113.0/24",
        "MetricsCidr": "10.0.0.0/16",
        "Database": "existing",
        "DatabaseUrlSecretArn": url_secret,
    }
    service = Deployed("service.yaml", params)
    problems = service.problems
    # Outputs of resources moto skipped are missing; the others must be the template's.
    model = {k: v for k, v in service.model.outputs().items() if k not in ("ApiTokenSecretArn", "SnsBasicAuthSecretArn")}
    want = {**model, "LoadBalancerDnsName": service.outputs.get("LoadBalancerDnsName")}
    if service.outputs != want or not str(want["LoadBalancerDnsName"]).endswith(".elb.amazonaws.com"):
        problems.append(f"outputs {service.outputs}, expected {want}")
    if service.outputs.get("SnsEndpoint") != "https://restop.example.com/sns":
        problems.append(f"SnsEndpoint {service.outputs.get('SnsEndpoint')}")

    basic_auth = service.secret_values.get("SnsBasicAuthSecret", "")
    if not re.fullmatch(r"sns:[A-Za-z0-9]{40}", basic_auth):
        problems.append(f"RESTOP_SNS_BASIC_AUTH's secret is not user:password ({len(basic_auth)} characters)")
    if not re.fullmatch(r"[A-Za-z0-9]{48}", service.secret_values.get("ApiTokenSecret", "")):
        problems.append("RESTOP_API_TOKENS's secret is not a 48-character token")

    ecs = MOTO.client("ecs")
    cluster = service.outputs["Cluster"]
    (svc,) = ecs.describe_services(cluster=cluster, services=[service.resources["Service"][1]])["services"]
    # moto's AWS::ECS::Service and TaskDefinition drop some properties: noted, and held to the
    # template by check_service.py instead.
    task = ecs.describe_task_definition(taskDefinition=service.outputs["TaskDefinition"])["taskDefinition"]
    dropped = [f"service {key}" for key in ("deploymentConfiguration", "networkConfiguration", "loadBalancers") if not svc.get(key)]
    dropped += [f"service launchType ({svc.get('launchType')})"] if svc.get("launchType") != "FARGATE" else []
    dropped += [f"task networkMode ({task.get('networkMode')})"] if task.get("networkMode") != "awsvpc" else []
    if dropped:
        service.notes.append(f"note: moto's ECS drops {', '.join(dropped)}: check_service.py checks the template's")
    if (svc["desiredCount"], svc["taskDefinition"]) != (2, service.outputs["TaskDefinition"]):
        problems.append(f"service {svc['desiredCount']} x {svc['taskDefinition']}")

    (c,) = task["containerDefinitions"]
    env = {e["name"]: e["value"] for e in c["environment"]}
    if (c.get("readonlyRootFilesystem"), c.get("user"), env.get("RESTOP_LOG_FORMAT"), c.get("stopTimeout")) != (True, "10001:10001", "json", 40):
        problems.append(f"task: read-only {c.get('readonlyRootFilesystem')}, user {c.get('user')}, logs {env.get('RESTOP_LOG_FORMAT')}, stop timeout {c.get('stopTimeout')}")
    # moto keeps a null where Fn::If gave AWS::NoValue inside a list, and drops the ValueFrom of
    # a skipped secret: only the given DATABASE_URL secret arrives whole.
    got_secrets = {x["name"]: x.get("valueFrom") for x in c["secrets"] if x}
    if sorted(got_secrets) != ["DATABASE_URL", "RESTOP_API_TOKENS", "RESTOP_SNS_BASIC_AUTH"] or got_secrets["DATABASE_URL"] != url_secret:
        problems.append(f"task secrets {got_secrets}")
    if set(env) & {"DATABASE_URL", "RESTOP_API_TOKENS", "RESTOP_SNS_BASIC_AUTH"}:
        problems.append(f"a secret in the task's plain environment: {sorted(env)}")

    elb = MOTO.client("elbv2")
    (tg,) = elb.describe_target_groups(TargetGroupArns=[service.resources["TargetGroup"][1]])["TargetGroups"]
    if (tg["HealthCheckPath"], tg["Port"], tg["TargetType"]) != ("/readyz", 8080, "ip"):
        problems.append(f"target group {tg['HealthCheckPath']} {tg['Port']} {tg['TargetType']}")
    https = elb.describe_listeners(ListenerArns=[service.resources["HttpsListener"][1]])["Listeners"][0]
    if (https["Protocol"], https["Port"], https.get("SslPolicy")) != ("HTTPS", 443, "ELBSecurityPolicy-TLS13-1-2-2021-06"):
        problems.append(f"HTTPS listener {https['Protocol']} {https['Port']} {https.get('SslPolicy')}")
    rules = {}
    for rule in elb.describe_rules(ListenerArn=https["ListenerArn"])["Rules"]:
        conditions = {cond["Field"]: cond.get("PathPatternConfig", cond.get("SourceIpConfig", {})).get("Values") for cond in rule["Conditions"]}
        rules[rule["Priority"]] = (conditions, rule["Actions"][0]["Type"])
    want_rules = {
        "10": ({"path-pattern": ["/sns"]}, "forward"),
        "20": ({"path-pattern": ["/v1/*", "/ui*"], "source-ip": ["203.0.113.0/24"]}, "forward"),
        "default": ({}, "fixed-response"),
    }
    if rules != want_rules:
        problems.append(f"HTTPS listener rules {rules}, expected {want_rules}")

    ec2 = MOTO.client("ec2")
    task_sg, lb_sg = service.resources["TaskSecurityGroup"][1], service.resources["LoadBalancerSecurityGroup"][1]
    (group,) = ec2.describe_security_groups(GroupIds=[task_sg])["SecurityGroups"]
    ingress = sorted(
        (p["FromPort"], [r["CidrIp"] for r in p.get("IpRanges", [])] + [g["GroupId"] for g in p.get("UserIdGroupPairs", [])])
        for p in group["IpPermissions"]
    )
    if ingress != [(8080, [lb_sg]), (9090, ["10.0.0.0/16"])]:
        problems.append(f"task security group ingress {ingress}")

    (group,) = MOTO.client("logs").describe_log_groups(logGroupNamePrefix=service.outputs["LogGroup"])["logGroups"]
    if group.get("retentionInDays") != 90:
        problems.append(f"log group retention {group.get('retentionInDays')}")

    records = MOTO.client("route53").list_resource_record_sets(HostedZoneId=params["HostedZoneId"])["ResourceRecordSets"]
    alias = [r for r in records if r["Name"].rstrip(".") == "restop.example.com" and r["Type"] == "A"]
    if len(alias) != 1 or alias[0].get("AliasTarget", {}).get("DNSName", "").rstrip(".") != service.outputs["LoadBalancerDnsName"]:
        problems.append(f"DNS record {alias}")
    return service.result()


def service_created_database() -> list[str]:
    """Database=create: moto's RDS has no MasterUserSecret attribute (RDS's managed password),
    so this stack cannot be created there; the check records that and that nothing else fails."""
    MOTO.reset()
    network = service_network()
    del network["HostedZoneId"]
    params = {
        **network,
        "ImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/restop:0.1.0",
        "DomainName": "restop.example.com",
        "TaskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/restop",
        "TopicArns": f"arn:aws:sns:{REGION}:{ACCOUNT}:restop-rds-events",
    }
    try:
        Deployed("service.yaml", params)
    except botocore.exceptions.ClientError as e:
        message = str(e)
        if "MasterUserSecret" in message:
            return ["note: moto cannot deploy service.yaml with Database=create: " + message.split(": ", 1)[-1]]
        return [f"service.yaml Database=create: {message}"]
    return ["note: moto now deploys service.yaml with Database=create: check its database in moto too"]


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
        Check("moto", "service.yaml, Database=existing, AdminCidr, MetricsCidr, hosted zone", service_existing_database),
        Check("moto", "service.yaml, Database=create", service_created_database),
        Check("moto", "resource types moto's CloudFormation skipped", unsupported_types_report),
        Check("moto", "stop the launcher", MOTO.stop),
    ]
