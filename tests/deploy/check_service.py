"""Static checks of deploy/cloudformation/service.yaml (restop on ECS Fargate), evaluated with
tests/deploy/cfn.py for each way of deploying it: secrets only through ValueFrom and never in
an output, the load balancer's routing (/sns from anywhere, /v1 and /ui from AdminCidr only,
/metrics nowhere), health checks on /readyz, narrow security groups, the task's hardening,
rolling updates, the database, and every RESTOP_* name a real setting of src/config.rs.
cfn-lint and the no-account/region/partition rule cover this template with the others
(check_templates.py)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import cfn
from runner import Check

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "service.yaml"
CONFIG_RS = ROOT / "src" / "config.rs"
UNIT = ROOT / "deploy" / "systemd" / "restop.service"

SECRET_SETTINGS = {"RESTOP_API_TOKENS", "RESTOP_SNS_BASIC_AUTH", "DATABASE_URL"}
APP_PORT, METRICS_PORT = 8080, 9090
ADMIN_CIDR, METRICS_CIDR = "203.0.113.0/24", "10.0.0.0/16"
EXISTING_URL_SECRET = "arn:aws:secretsmanager:eu-west-1:222222222222:secret:restop-db-AbCdEf"

REQUIRED = {
    "ImageUri": "222222222222.dkr.ecr.eu-west-1.amazonaws.com/restop:0.1.0",
    "VpcId": "vpc-1",
    "PublicSubnetIds": ["subnet-pub-a", "subnet-pub-b"],
    "PrivateSubnetIds": ["subnet-priv-a", "subnet-priv-b"],
    "DomainName": "restop.example.com",
    "CertificateArn": "arn:aws:acm:eu-west-1:222222222222:certificate/abc",
    "TaskRoleArn": "arn:aws:iam::222222222222:role/restop",
    "TopicArns": "arn:aws:sns:eu-west-1:222222222222:restop-rds-events",
}
CREATE = dict(REQUIRED)
EXISTING = {**REQUIRED, "Database": "existing", "DatabaseUrlSecretArn": EXISTING_URL_SECRET}
WITH_ADMIN = {**REQUIRED, "AdminCidr": ADMIN_CIDR, "MetricsCidr": METRICS_CIDR}
VARIANTS = {"Database=create": CREATE, "Database=existing": EXISTING, "AdminCidr and MetricsCidr": WITH_ADMIN}

# Paths the load balancer must (not) route, with who may reach them.
PUBLIC_PATHS = ["/sns"]
ADMIN_PATHS = ["/v1/executions", "/v1/summary", "/ui", "/ui/app.js"]
UNROUTED_PATHS = ["/metrics", "/healthz", "/readyz", "/", "/v2/x", "/snsx"]


def stack(params: dict) -> cfn.Stack:
    return cfn.Stack(cfn.load(TEMPLATE), params)


def container(s: cfn.Stack) -> dict:
    (only,) = s.properties("TaskDefinition")["ContainerDefinitions"]
    return only


def environment(s: cfn.Stack) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in container(s).get("Environment", [])}


def resources_of_type(s: cfn.Stack, kind: str) -> list[str]:
    return sorted(name for name, res in s.active_resources().items() if res["Type"] == kind)


def secrets_only_through_value_from() -> list[str]:
    problems = []
    for variant, params in VARIANTS.items():
        s = stack(params)
        env, secrets = environment(s), container(s).get("Secrets", [])
        names = [x["Name"] for x in secrets]
        want = SECRET_SETTINGS | ({"PGPASSWORD"} if params.get("Database", "create") == "create" else set())
        if sorted(names) != sorted(want):
            problems.append(f"{variant}: Secrets {sorted(names)}, expected {sorted(want)} once each")
        for name in sorted((SECRET_SETTINGS | {"PGPASSWORD"}) & set(env)):
            problems.append(f"{variant}: {name} is a plain environment variable")
        for name, value in env.items():
            if "resolve:secretsmanager" in value or "resolve:ssm-secure" in value:
                problems.append(f"{variant}: environment {name} resolves a secret into plain text")
        # Every ValueFrom is one of this stack's secrets, RDS's managed secret, or the given ARN.
        allowed = {f"<Ref {n}>" for n in resources_of_type(s, "AWS::SecretsManager::Secret")} | {EXISTING_URL_SECRET}
        allowed.add("<GetAtt DatabaseInstance.MasterUserSecret.SecretArn>")
        readable = set(execution_role_secret_resources(s))
        for x in secrets:
            arn = re.sub(r":[A-Za-z0-9_]*::$", "", x["ValueFrom"])  # a JSON key's suffix
            if arn not in allowed:
                problems.append(f"{variant}: {x['Name']} from {x['ValueFrom']}, not a Secrets Manager secret of the stack")
            if arn not in readable:
                problems.append(f"{variant}: the execution role may not read {x['Name']}'s secret {arn}")
        extra = readable - {re.sub(r":[A-Za-z0-9_]*::$", "", x["ValueFrom"]) for x in secrets}
        if extra:
            problems.append(f"{variant}: the execution role may read secrets no container uses: {sorted(extra)}")
    return problems


def execution_role_secret_resources(s: cfn.Stack) -> list[str]:
    (policy,) = s.properties("ExecutionRole")["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    if statement["Action"] != "secretsmanager:GetSecretValue":
        raise ValueError(f"unexpected statement {statement}")
    return statement["Resource"]


def secrets_generated_never_output() -> list[str]:
    """The stack's secrets are generated (or built from generated ones and from RDS's managed
    secret), no parameter carries a secret value, and no output resolves one."""
    problems = []
    template = cfn.plain(cfn.load(TEMPLATE))
    for name, spec in template["Parameters"].items():
        if re.search(r"password|token|secret(?!arn)|basicauth", name, re.IGNORECASE):
            problems.append(f"parameter {name} looks like a secret value: take an ARN, or generate it")
    s = stack(CREATE)
    for name in resources_of_type(s, "AWS::SecretsManager::Secret"):
        props = s.properties(name)
        if "GenerateSecretString" in props:
            continue
        value = props.get("SecretString", "")
        # Literal text may only be the user name and the database's address.
        literal = re.sub(r"\{\{resolve:secretsmanager:[^}]+\}\}", "", value)
        if name == "SnsBasicAuthSecret":
            if not re.fullmatch(r"sns:\{\{resolve:secretsmanager:<Ref SnsPasswordSecret>\}\}", value):
                problems.append(f"{name}: {value!r} is not user:<generated password>")
        elif name == "DatabaseUrlSecret":
            if not re.fullmatch(
                r"postgres://restop@<GetAtt DatabaseInstance\.Endpoint\.Address>:<GetAtt DatabaseInstance\.Endpoint\.Port>/restop\?sslmode=require",
                literal,
            ):
                problems.append(f"{name}: {value!r} is not the instance's URL (password from PGPASSWORD)")
        else:
            problems.append(f"{name}: neither generated nor a known composition: {value!r}")
    for variant, params in VARIANTS.items():
        for out, value in stack(params).outputs().items():
            text = str(value)
            if "resolve:" in text:
                problems.append(f"{variant}: output {out} resolves a secret: {text}")
            if re.search(r"https://[^/@]+:[^/@]+@", text):
                problems.append(f"{variant}: output {out} carries credentials: {text}")
    return problems


def health_checks_on_readyz() -> list[str]:
    problems = []
    s = stack(CREATE)
    tg = s.properties("TargetGroup")
    want = {"HealthCheckPath": "/readyz", "HealthCheckProtocol": "HTTP", "Protocol": "HTTP", "Port": APP_PORT, "TargetType": "ip", "Matcher": {"HttpCode": "200"}}
    for key, value in want.items():
        if tg.get(key) != value:
            problems.append(f"TargetGroup {key}: {tg.get(key)!r}, expected {value!r}")
    env = environment(s)
    if env.get("RESTOP_LISTEN") != f"0.0.0.0:{APP_PORT}":
        problems.append(f"RESTOP_LISTEN {env.get('RESTOP_LISTEN')!r}: the target group checks port {APP_PORT}")
    (lb,) = s.properties("Service")["LoadBalancers"]
    if (lb["ContainerName"], lb["ContainerPort"], lb["TargetGroupArn"]) != (container(s)["Name"], APP_PORT, "<Ref TargetGroup>"):
        problems.append(f"Service LoadBalancers {lb}")
    delay = {a["Key"]: a["Value"] for a in tg.get("TargetGroupAttributes", [])}.get("deregistration_delay.timeout_seconds")
    if delay is None or not 14 < int(delay) < int(container(s)["StopTimeout"]):
        problems.append(f"deregistration delay {delay}: must outlast a request (14 s) and end before the stop timeout")
    return problems


def routed(s: cfn.Stack, path: str, source: str) -> str:
    """What the HTTPS listener does with a request for `path` from address `source`:
    'forward' or the default action's type (rules in priority order, as the ALB does)."""
    rules = []
    for name in resources_of_type(s, "AWS::ElasticLoadBalancingV2::ListenerRule"):
        props = s.properties(name)
        if props["ListenerArn"] == "<Ref HttpsListener>":
            rules.append(props)
    for rule in sorted(rules, key=lambda r: r["Priority"]):
        matches = True
        for condition in rule["Conditions"]:
            if condition["Field"] == "path-pattern":
                matches &= any(fnmatch.fnmatchcase(path, p) for p in condition["PathPatternConfig"]["Values"])
            elif condition["Field"] == "source-ip":
                matches &= source in condition["SourceIpConfig"]["Values"]
            else:
                raise ValueError(f"condition {condition['Field']} not evaluated")
        if matches:
            (action,) = rule["Actions"]
            return f"{action['Type']} {action.get('TargetGroupArn', '')}".strip()
    (default,) = s.properties("HttpsListener")["DefaultActions"]
    return default["Type"]


def listener_rules() -> list[str]:
    problems = []
    forward = "forward <Ref TargetGroup>"
    # A source is written as the CIDR a source-ip condition would list (the admin's: ADMIN_CIDR).
    anyone = "198.51.100.7/32"
    for variant, params in [("no AdminCidr", CREATE), ("AdminCidr", WITH_ADMIN)]:
        s = stack(params)
        for path in PUBLIC_PATHS:
            if routed(s, path, anyone) != forward:
                problems.append(f"{variant}: {path} from anywhere is {routed(s, path, anyone)}, not forwarded")
        for path in ADMIN_PATHS:
            if routed(s, path, anyone) == forward:
                problems.append(f"{variant}: {path} is forwarded from anywhere")
            admin = routed(s, path, ADMIN_CIDR)
            if "AdminCidr" in params and admin != forward:
                problems.append(f"{variant}: {path} from AdminCidr is {admin}")
            if "AdminCidr" not in params and admin == forward:
                problems.append(f"{variant}: {path} is forwarded though AdminCidr is empty")
        for path in UNROUTED_PATHS:
            for source in (anyone, ADMIN_CIDR):
                if routed(s, path, source) == forward:
                    problems.append(f"{variant}: {path} is forwarded from {source}")
        https = s.properties("HttpsListener")
        if (https["Protocol"], https["Port"], https["Certificates"]) != ("HTTPS", 443, [{"CertificateArn": params["CertificateArn"]}]):
            problems.append(f"{variant}: HTTPS listener {https}")
        if not https.get("SslPolicy", "").startswith("ELBSecurityPolicy-TLS13-"):
            problems.append(f"{variant}: SslPolicy {https.get('SslPolicy')} is not a TLS 1.3 policy")
        http = s.properties("HttpListener")
        if http["DefaultActions"] != [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]:
            problems.append(f"{variant}: HTTP listener does not only redirect to HTTPS: {http['DefaultActions']}")
        if resources_of_type(s, "AWS::ElasticLoadBalancingV2::Listener") != ["HttpListener", "HttpsListener"]:
            problems.append(f"{variant}: listeners {resources_of_type(s, 'AWS::ElasticLoadBalancingV2::Listener')}")
        lb = s.properties("LoadBalancer")
        if (lb["Scheme"], lb["Subnets"]) != ("internet-facing", params["PublicSubnetIds"]):
            problems.append(f"{variant}: load balancer {lb['Scheme']} in {lb['Subnets']}")
    return problems


def group_rules(s: cfn.Stack, group: str, direction: str) -> list[tuple]:
    """(protocol, from port, to port, peer) of a security group's rules in `direction`
    (Ingress or Egress), inline or as resources of their own."""
    peer_key = "SourceSecurityGroupId" if direction == "Ingress" else "DestinationSecurityGroupId"
    rules = list(s.properties(group).get(f"SecurityGroup{direction}", []))
    for name in resources_of_type(s, f"AWS::EC2::SecurityGroup{direction}"):
        props = s.properties(name)
        if props["GroupId"] == f"<GetAtt {group}.GroupId>":
            rules.append(props)
    return sorted(((r["IpProtocol"], r.get("FromPort"), r.get("ToPort"), r.get("CidrIp") or r.get(peer_key)) for r in rules), key=str)


def narrow_security_groups() -> list[str]:
    problems = []
    nothing = ("-1", None, None, "127.0.0.1/32")  # replaces the default allow-all egress
    lb_sg, task_sg = "<Ref LoadBalancerSecurityGroup>", "<GetAtt TaskSecurityGroup.GroupId>"
    for variant, params in VARIANTS.items():
        s = stack(params)
        want = {
            "LoadBalancerSecurityGroup": (
                [("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 80, 80, "0.0.0.0/0")],
                [nothing, ("tcp", APP_PORT, APP_PORT, task_sg)],
            ),
            "TaskSecurityGroup": (
                [("tcp", APP_PORT, APP_PORT, lb_sg)] + ([("tcp", METRICS_PORT, METRICS_PORT, METRICS_CIDR)] if "MetricsCidr" in params else []),
                [("tcp", 443, 443, "0.0.0.0/0"),
                 ("tcp", 5432, 5432, "<Ref DatabaseSecurityGroup>") if params.get("Database") != "existing" else ("tcp", 5432, 5432, "0.0.0.0/0")],
            ),
        }
        if params.get("Database") != "existing":
            want["DatabaseSecurityGroup"] = ([("tcp", 5432, 5432, task_sg)], [nothing])
        if resources_of_type(s, "AWS::EC2::SecurityGroup") != sorted(want):
            problems.append(f"{variant}: security groups {resources_of_type(s, 'AWS::EC2::SecurityGroup')}")
        for group, rules in want.items():
            for direction, expected in zip(("Ingress", "Egress"), rules):
                got = group_rules(s, group, direction)
                if got != sorted(expected, key=str):
                    problems.append(f"{variant}: {group} {direction.lower()} {got}, expected {sorted(expected, key=str)}")
    return problems


def metrics_inside_the_vpc_only() -> list[str]:
    problems = []
    s = stack(WITH_ADMIN)
    if environment(s).get("RESTOP_METRICS_LISTEN") != f"0.0.0.0:{METRICS_PORT}":
        problems.append(f"RESTOP_METRICS_LISTEN {environment(s).get('RESTOP_METRICS_LISTEN')!r}: /metrics must leave the load balancer's port")
    if s.properties("TargetGroup")["Port"] == METRICS_PORT:
        problems.append("the target group points at the metrics port")
    pattern = cfn.plain(cfn.load(TEMPLATE))["Parameters"]["MetricsCidr"]["AllowedPattern"]
    for cidr, ok in [("", True), ("10.0.0.0/16", True), ("172.31.0.0/16", True), ("192.168.1.0/24", True),
                     ("0.0.0.0/0", False), ("172.32.0.0/16", False), ("8.8.8.0/24", False)]:
        if bool(re.fullmatch(pattern, cidr)) != ok:
            problems.append(f"MetricsCidr {cidr!r} {'refused' if ok else 'accepted'}")
    return problems


def task_hardening() -> list[str]:
    problems = []
    for variant, params in VARIANTS.items():
        s = stack(params)
        td, c = s.properties("TaskDefinition"), container(s)
        if (td["NetworkMode"], td["RequiresCompatibilities"]) != ("awsvpc", ["FARGATE"]):
            problems.append(f"{variant}: task {td['NetworkMode']} {td['RequiresCompatibilities']}")
        if td["TaskRoleArn"] != params["TaskRoleArn"]:
            problems.append(f"{variant}: TaskRoleArn {td['TaskRoleArn']}")
        if c.get("ReadonlyRootFilesystem") is not True:
            problems.append(f"{variant}: the root filesystem is writable")
        user = str(c.get("User", "")).split(":")[0]
        if user in ("", "0", "root"):
            problems.append(f"{variant}: the container runs as root (User {c.get('User')!r})")
        if c.get("LinuxParameters", {}).get("Capabilities", {}).get("Drop") != ["ALL"]:
            problems.append(f"{variant}: capabilities not all dropped")
        if environment(s).get("RESTOP_LOG_FORMAT") != "json":
            problems.append(f"{variant}: RESTOP_LOG_FORMAT {environment(s).get('RESTOP_LOG_FORMAT')!r}")
        logs = c["LogConfiguration"]
        if (logs["LogDriver"], logs["Options"].get("awslogs-group")) != ("awslogs", "<Ref LogGroup>"):
            problems.append(f"{variant}: logs {logs}")
        if not s.properties("LogGroup").get("RetentionInDays"):
            problems.append(f"{variant}: the log group keeps logs forever")
        if c.get("StopTimeout") != unit_stop_timeout():
            problems.append(f"{variant}: StopTimeout {c.get('StopTimeout')} differs from the unit's TimeoutStopSec {unit_stop_timeout()} (restop's shutdown)")
    return problems


def unit_stop_timeout() -> int:
    match = re.search(r"^TimeoutStopSec=(\d+)s$", UNIT.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else -1


def rolling_updates() -> list[str]:
    problems = []
    s = stack(CREATE)
    svc = s.properties("Service")
    deployment = svc["DeploymentConfiguration"]
    if deployment.get("DeploymentCircuitBreaker") != {"Enable": True, "Rollback": True}:
        problems.append(f"circuit breaker {deployment.get('DeploymentCircuitBreaker')}")
    if deployment.get("MinimumHealthyPercent") != 100 or deployment.get("MaximumPercent", 0) < 200:
        problems.append(f"a rolling update may stop replicas before new ones serve: {deployment}")
    if svc["DesiredCount"] != 2:
        problems.append(f"DesiredCount defaults to {svc['DesiredCount']}, not 2")
    network = svc["NetworkConfiguration"]["AwsvpcConfiguration"]
    if (network["AssignPublicIp"], network["Subnets"], network["SecurityGroups"]) != ("DISABLED", CREATE["PrivateSubnetIds"], ["<Ref TaskSecurityGroup>"]):
        problems.append(f"tasks' network {network}")
    if svc.get("LaunchType") != "FARGATE":
        problems.append(f"LaunchType {svc.get('LaunchType')}")
    return problems


def database_modes() -> list[str]:
    problems = []
    db_resources = {"DatabaseInstance", "DatabaseSubnetGroup", "DatabaseSecurityGroup", "DatabaseFromTasks", "DatabaseUrlSecret"}
    template = cfn.plain(cfn.load(TEMPLATE))
    s = stack(CREATE)
    missing = db_resources - set(s.active_resources())
    if missing:
        problems.append(f"Database=create lacks {sorted(missing)}")
    db = s.properties("DatabaseInstance")
    want = {
        "Engine": "postgres", "StorageEncrypted": True, "ManageMasterUserPassword": True, "DeletionProtection": True,
        "PubliclyAccessible": False, "DBSubnetGroupName": "<Ref DatabaseSubnetGroup>",
    }
    for key, value in want.items():
        if db.get(key) != value:
            problems.append(f"DatabaseInstance {key}: {db.get(key)!r}, expected {value!r}")
    if "MasterUserPassword" in db:
        problems.append("DatabaseInstance has a MasterUserPassword: RDS manages it")
    if not db.get("BackupRetentionPeriod", 0) >= 1:
        problems.append(f"BackupRetentionPeriod {db.get('BackupRetentionPeriod')}: no backups")
    if template["Resources"]["DatabaseInstance"].get("DeletionPolicy") != "Snapshot":
        problems.append("DatabaseInstance: DeletionPolicy is not Snapshot")
    if s.properties("DatabaseSubnetGroup")["SubnetIds"] != CREATE["PrivateSubnetIds"]:
        problems.append("the database is not in the private subnets")
    gone = db_resources & set(stack(EXISTING).active_resources())
    if gone:
        problems.append(f"Database=existing still creates {sorted(gone)}")
    for name, params, should_fail in [
        ("Database=existing without DatabaseUrlSecretArn", {**REQUIRED, "Database": "existing"}, True),
        ("Database=create with DatabaseUrlSecretArn", {**REQUIRED, "DatabaseUrlSecretArn": EXISTING_URL_SECRET}, True),
        ("Database=existing", EXISTING, False),
        ("Database=create", CREATE, False),
    ]:
        failures = stack(params).rule_failures()
        if bool(failures) != should_fail:
            problems.append(f"{name}: rule failures {failures}")
    return problems


def outputs() -> list[str]:
    got = stack(CREATE).outputs()
    want = {
        "SnsEndpoint": "https://restop.example.com/sns",
        "PublicUrl": "https://restop.example.com/sns",
        "LoadBalancerDnsName": "<GetAtt LoadBalancer.DNSName>",
        "LogGroup": "<Ref LogGroup>",
        "Cluster": "<Ref Cluster>",
        "TaskDefinition": "<Ref TaskDefinition>",
        "TaskSecurityGroup": "<Ref TaskSecurityGroup>",
        "ApiTokenSecretArn": "<Ref ApiTokenSecret>",
        "SnsBasicAuthSecretArn": "<Ref SnsBasicAuthSecret>",
    }
    problems = [f"outputs {got}, expected {want}"] if got != want else []
    env = environment(stack(CREATE))
    if env.get("RESTOP_PUBLIC_URL") != got.get("PublicUrl"):
        problems.append(f"RESTOP_PUBLIC_URL {env.get('RESTOP_PUBLIC_URL')!r} differs from output PublicUrl")
    return problems


def setting_names() -> list[str]:
    """Every RESTOP_* name the runtime kit sets is one of restop's settings."""
    known = set(re.findall(r'env = "([A-Z_]+)"', CONFIG_RS.read_text()))
    problems = []
    used = {f"service.yaml: {name}": name for name in environment(stack(WITH_ADMIN))}
    used.update({f"service.yaml secret: {x['Name']}": x["Name"] for x in container(stack(CREATE))["Secrets"]})
    for path in [ROOT / "deploy" / "systemd" / "restop.env.example", ROOT / "docker-compose.yml", ROOT / "Dockerfile"]:
        for name in re.findall(r"\b(RESTOP_[A-Z_]+)\b", path.read_text()):
            used[f"{path.relative_to(ROOT)}: {name}"] = name
    for where, name in sorted(used.items()):
        if name.startswith("RESTOP_") and name not in known:
            problems.append(f"{where} is not a setting of src/config.rs")
    return problems


def checks() -> list[Check]:
    return [
        Check("service", "secrets only through ValueFrom, readable by the execution role", secrets_only_through_value_from),
        Check("service", "secrets generated, never parameters or outputs", secrets_generated_never_output),
        Check("service", "target group health checks on /readyz", health_checks_on_readyz),
        Check("service", "listener rules: /sns anyone, /v1 /ui AdminCidr only, nothing else; TLS 1.3, HTTP redirected", listener_rules),
        Check("service", "security groups", narrow_security_groups),
        Check("service", "/metrics on its own port, private CIDRs only", metrics_inside_the_vpc_only),
        Check("service", "task: awsvpc, non-root, read-only, json logs with retention, stop timeout", task_hardening),
        Check("service", "service: rolling updates with circuit breaker, private subnets", rolling_updates),
        Check("service", "Database=create (encrypted, managed password, backups) and existing", database_modes),
        Check("service", "outputs", outputs),
        Check("service", "RESTOP_* names are real settings (service.yaml, systemd env, compose, Dockerfile)", setting_names),
    ]
