#!/usr/bin/env python3
"""Smoke test of tests/moto/launcher.py (not part of CI).

    target/moto-venv/bin/python tests/moto/smoke_test.py

Starts the launcher on a free port, drives it with boto3 and plain HTTP, and prints
"N passed, M failed" at the end (exit status 1 if anything failed).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(HERE, "launcher.py")
REGION = "us-east-1"
ACCOUNT = "123456789012"
DELAY = 1.0  # start/stop seconds given to the launcher through the environment
# botocore's retries "max_attempts" counts RETRIES (max_attempts=1 still retries once);
# "total_max_attempts": 1 means one attempt and no retry.
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})

CHECKS: list[tuple[str, Callable[[], None]]] = []


def check(fn: Callable[[], None]) -> Callable[[], None]:
    CHECKS.append((fn.__name__, fn))
    return fn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT = free_port()
ENDPOINT = f"http://127.0.0.1:{PORT}"


def client(service: str, config: Config = NO_RETRY) -> Any:
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


def http(method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None,
         data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    if payload is not None:
        data = json.dumps(payload).encode()
    request = urllib.request.Request(ENDPOINT + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def error_code(fn: Callable[[], Any]) -> tuple[str, int]:
    try:
        fn()
    except ClientError as error:
        return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("expected a ClientError, the call succeeded")


def instance_status(rds: Any, name: str) -> str:
    return rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"]


def cluster_status(rds: Any, name: str) -> str:
    return rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]["Status"]


def wait_for(fn: Callable[[], str], want: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = fn()
    while last != want and time.monotonic() < deadline:
        time.sleep(0.1)
        last = fn()
    assert last == want, f"still {last!r} after {timeout}s, wanted {want!r}"


def create_instance(rds: Any, name: str, **extra: Any) -> dict[str, Any]:
    return rds.create_db_instance(
        DBInstanceIdentifier=name,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="admin1",
        MasterUserPassword="password123",
        AllocatedStorage=20,
        **extra,
    )["DBInstance"]


def arn(kind: str, name: str) -> str:
    return f"arn:aws:rds:{REGION}:{ACCOUNT}:{kind}:{name}"


# ---------------------------------------------------------------------------------------


@check
def instance_create_is_available() -> None:
    rds = client("rds")
    created = create_instance(rds, "db-a")
    assert created["DBInstanceStatus"] == "available", created["DBInstanceStatus"]
    assert instance_status(rds, "db-a") == "available"


@check
def instance_stop_then_start_transitions() -> None:
    rds = client("rds")
    stopped = rds.stop_db_instance(DBInstanceIdentifier="db-a")["DBInstance"]
    assert stopped["DBInstanceStatus"] == "stopping", stopped["DBInstanceStatus"]
    assert instance_status(rds, "db-a") == "stopping"
    # a stop while stopping is refused, as on AWS
    assert error_code(lambda: rds.stop_db_instance(DBInstanceIdentifier="db-a"))[0] == "InvalidDBInstanceState"
    time.sleep(DELAY + 0.2)
    assert instance_status(rds, "db-a") == "stopped"

    started = rds.start_db_instance(DBInstanceIdentifier="db-a")["DBInstance"]
    assert started["DBInstanceStatus"] == "starting", started["DBInstanceStatus"]
    assert instance_status(rds, "db-a") == "starting"
    code, status = error_code(lambda: rds.stop_db_instance(DBInstanceIdentifier="db-a"))
    assert (code, status) == ("InvalidDBInstanceState", 400), (code, status)
    time.sleep(DELAY + 0.2)
    assert instance_status(rds, "db-a") == "available"


@check
def instance_delays_from_tags() -> None:
    rds = client("rds")
    create_instance(rds, "db-tagged", Tags=[{"Key": "moto:stop-seconds", "Value": "3"}])
    rds.add_tags_to_resource(ResourceName=arn("db", "db-tagged"),
                             Tags=[{"Key": "moto:start-seconds", "Value": "0"}])
    t0 = time.monotonic()
    rds.stop_db_instance(DBInstanceIdentifier="db-tagged")
    time.sleep(DELAY + 0.3)
    assert instance_status(rds, "db-tagged") == "stopping"  # 3 s from its tag, not DELAY
    wait_for(lambda: instance_status(rds, "db-tagged"), "stopped", 4)
    assert time.monotonic() - t0 >= 2.9
    started = rds.start_db_instance(DBInstanceIdentifier="db-tagged")["DBInstance"]
    assert started["DBInstanceStatus"] == "available"  # moto:start-seconds = 0
    assert instance_status(rds, "db-tagged") == "available"


@check
def instance_forced_status() -> None:
    rds = client("rds")
    rds.add_tags_to_resource(ResourceName=arn("db", "db-a"), Tags=[
        {"Key": "moto:force-status", "Value": "backing-up:2"},
        {"Key": "owner", "Value": "team"},
    ])
    assert instance_status(rds, "db-a") == "backing-up"
    code, _ = error_code(lambda: rds.stop_db_instance(DBInstanceIdentifier="db-a"))
    assert code == "InvalidDBInstanceState", code
    tags = {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(ResourceName=arn("db", "db-a"))["TagList"]}
    assert tags == {"moto:force-status": "backing-up:2", "owner": "team"}, tags
    time.sleep(2.1)
    assert instance_status(rds, "db-a") == "available"
    # forced "available" does not block a stop
    rds.add_tags_to_resource(ResourceName=arn("db", "db-a"),
                             Tags=[{"Key": "moto:force-status", "Value": "available:5"}])
    assert rds.stop_db_instance(DBInstanceIdentifier="db-a")["DBInstance"]["DBInstanceStatus"] == "available"
    rds.remove_tags_from_resource(ResourceName=arn("db", "db-a"), TagKeys=["moto:force-status"])
    assert instance_status(rds, "db-a") == "stopping"
    wait_for(lambda: instance_status(rds, "db-a"), "stopped", DELAY + 1)


@check
def create_with_tags_delay_and_forced_status() -> None:
    rds = client("rds")
    created = create_instance(rds, "db-slow", Tags=[{"Key": "moto:create-seconds", "Value": "1"}])
    assert created["DBInstanceStatus"] == "creating", created["DBInstanceStatus"]
    assert error_code(lambda: rds.stop_db_instance(DBInstanceIdentifier="db-slow"))[0] == "InvalidDBInstanceState"
    wait_for(lambda: instance_status(rds, "db-slow"), "available", 2)
    create_instance(rds, "db-broken", Tags=[{"Key": "moto:force-status", "Value": "failed"}])
    time.sleep(0.2)
    assert instance_status(rds, "db-broken") == "failed"  # no ":SECONDS": until removed
    rds.remove_tags_from_resource(ResourceName=arn("db", "db-broken"), TagKeys=["moto:force-status"])
    assert instance_status(rds, "db-broken") == "available"


@check
def instance_delete_while_stopping() -> None:
    rds = client("rds")
    create_instance(rds, "db-gone")
    rds.stop_db_instance(DBInstanceIdentifier="db-gone")
    deleted = rds.delete_db_instance(DBInstanceIdentifier="db-gone", SkipFinalSnapshot=True)["DBInstance"]
    assert deleted["DBInstanceStatus"] == "deleting", deleted["DBInstanceStatus"]
    code, status = error_code(lambda: rds.describe_db_instances(DBInstanceIdentifier="db-gone"))
    assert (code, status) == ("DBInstanceNotFound", 404), (code, status)


@check
def cluster_stop_start_transitions() -> None:
    rds = client("rds")
    rds.create_db_cluster(DBClusterIdentifier="cl-a", Engine="aurora-postgresql",
                          MasterUsername="admin1", MasterUserPassword="password123")
    assert cluster_status(rds, "cl-a") == "available"
    stopped = rds.stop_db_cluster(DBClusterIdentifier="cl-a")["DBCluster"]
    assert stopped["Status"] == "stopping", stopped["Status"]
    assert cluster_status(rds, "cl-a") == "stopping"
    code, _ = error_code(lambda: rds.stop_db_cluster(DBClusterIdentifier="cl-a"))
    assert code == "InvalidDBClusterStateFault", code
    code, _ = error_code(lambda: rds.start_db_cluster(DBClusterIdentifier="cl-a"))
    assert code == "InvalidDBClusterStateFault", code
    time.sleep(DELAY + 0.2)
    assert cluster_status(rds, "cl-a") == "stopped"
    started = rds.start_db_cluster(DBClusterIdentifier="cl-a")["DBCluster"]
    assert started["Status"] == "starting", started["Status"]
    try:
        rds.stop_db_cluster(DBClusterIdentifier="cl-a")
        raise AssertionError("stop while starting succeeded")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "InvalidDBClusterStateFault"
        assert "starting" in error.response["Error"]["Message"], error.response["Error"]["Message"]
    time.sleep(DELAY + 0.2)
    assert cluster_status(rds, "cl-a") == "available"
    rds.add_tags_to_resource(ResourceName=arn("cluster", "cl-a"),
                             Tags=[{"Key": "moto:force-status", "Value": "backing-up:1"}])
    assert cluster_status(rds, "cl-a") == "backing-up"
    assert error_code(lambda: rds.stop_db_cluster(DBClusterIdentifier="cl-a"))[0] == "InvalidDBClusterStateFault"
    time.sleep(1.1)
    assert cluster_status(rds, "cl-a") == "available"


@check
def aurora_member_instance() -> None:
    rds = client("rds")
    rds.create_db_instance(DBInstanceIdentifier="cl-a-1", DBClusterIdentifier="cl-a",
                           DBInstanceClass="db.r5.large", Engine="aurora-postgresql")
    member = rds.describe_db_instances(DBInstanceIdentifier="cl-a-1")["DBInstances"][0]
    assert member["DBClusterIdentifier"] == "cl-a", member.get("DBClusterIdentifier")
    assert member["DBInstanceStatus"] == "available"
    try:
        rds.stop_db_instance(DBInstanceIdentifier="cl-a-1")
        raise AssertionError("stopping an Aurora member succeeded")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "InvalidParameterCombination", error.response["Error"]
        assert "not eligible for stopping and starting" in error.response["Error"]["Message"]
    assert instance_status(rds, "cl-a-1") == "available"
    # a member that is busy blocks the cluster stop
    rds.add_tags_to_resource(ResourceName=arn("db", "cl-a-1"),
                             Tags=[{"Key": "moto:force-status", "Value": "modifying:1"}])
    assert error_code(lambda: rds.stop_db_cluster(DBClusterIdentifier="cl-a"))[0] == "InvalidDBClusterStateFault"
    time.sleep(1.1)
    # members follow the cluster's stop
    rds.stop_db_cluster(DBClusterIdentifier="cl-a")
    assert instance_status(rds, "cl-a-1") == "stopping"
    wait_for(lambda: instance_status(rds, "cl-a-1"), "stopped", DELAY + 1)
    rds.start_db_cluster(DBClusterIdentifier="cl-a")
    assert instance_status(rds, "cl-a-1") == "starting"
    wait_for(lambda: instance_status(rds, "cl-a-1"), "available", DELAY + 1)


@check
def read_replica_fields() -> None:
    rds = client("rds")
    create_instance(rds, "db-src")
    replica = rds.create_db_instance_read_replica(DBInstanceIdentifier="db-rep",
                                                  SourceDBInstanceIdentifier="db-src")["DBInstance"]
    assert replica["DBInstanceStatus"] == "available"
    described = rds.describe_db_instances(DBInstanceIdentifier="db-rep")["DBInstances"][0]
    assert described["ReadReplicaSourceDBInstanceIdentifier"] == "db-src", described
    source = rds.describe_db_instances(DBInstanceIdentifier="db-src")["DBInstances"][0]
    assert source["ReadReplicaDBInstanceIdentifiers"] == ["db-rep"], source.get("ReadReplicaDBInstanceIdentifiers")
    # moto (not patched) refuses to stop a replica with InvalidDBClusterStateFault, and
    # lets the source of a replica be stopped; see README.md.
    assert error_code(lambda: rds.stop_db_instance(DBInstanceIdentifier="db-rep"))[0] == "InvalidDBClusterStateFault"


@check
def throttling_fault_hits_exactly_count() -> None:
    rds = client("rds")
    status, _, body = http("POST", "/restop-test/faults", {
        "action": "DescribeDBInstances", "count": 2, "code": "Throttling",
        "status": 400, "message": "Rate exceeded"})
    assert status == 200, body
    for _ in range(2):
        try:
            rds.describe_db_instances()
            raise AssertionError("call not faulted")
        except ClientError as error:
            assert error.response["Error"]["Code"] == "Throttling", error.response
            assert error.response["Error"]["Message"] == "Rate exceeded"
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert rds.describe_db_instances()["DBInstances"], "third call should reach moto"
    # the fault is used up: nothing stays armed
    status, _, body = http("GET", "/restop-test/faults")
    assert json.loads(body) == [], body


@check
def fault_error_body_is_realistic_xml() -> None:
    http("POST", "/restop-test/faults", {"action": "DescribeDBInstances", "count": 1, "code": "Throttling",
                                         "status": 400, "message": "Rate exceeded"})
    status, headers, body = http(
        "POST", "/", data=b"Action=DescribeDBInstances&Version=2014-10-31",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    text = body.decode()
    assert status == 400, status
    assert headers.get("Content-Type") == "text/xml", headers
    assert text.startswith('<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">'
                           "<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
                           "</Error><RequestId>"), text
    assert text.endswith("</RequestId></ErrorResponse>"), text


@check
def fault_5xx() -> None:
    rds = client("rds")
    http("POST", "/restop-test/faults", {"action": "StopDBInstance", "count": 1, "code": "InternalFailure",
                                         "status": 503, "message": "Service unavailable",
                                         "resource": "db-src"})
    # a fault restricted to a resource leaves other resources alone
    code, _ = error_code(lambda: rds.stop_db_instance(DBInstanceIdentifier="db-missing"))
    assert code == "DBInstanceNotFound", code
    code, status = error_code(lambda: rds.stop_db_instance(DBInstanceIdentifier="db-src"))
    assert (code, status) == ("InternalFailure", 503), (code, status)
    status, _, body = http("DELETE", "/restop-test/faults")
    assert status == 200 and json.loads(body) == {"cleared": 0}, body


@check
def delay_only_fault() -> None:
    rds = client("rds")
    http("POST", "/restop-test/faults", {"action": "DescribeDBClusters", "code": None, "delay_seconds": 0.5})
    t0 = time.monotonic()
    assert rds.describe_db_clusters()["DBClusters"]
    assert time.monotonic() - t0 >= 0.5
    t0 = time.monotonic()
    rds.describe_db_clusters()
    assert time.monotonic() - t0 < 0.5


@check
def bad_fault_is_rejected() -> None:
    status, _, body = http("POST", "/restop-test/faults", {"count": 1})
    assert status == 400 and b"action" in body, (status, body)
    status, _, _ = http("GET", "/restop-test/nope")
    assert status == 404


@check
def call_log() -> None:
    rds = client("rds")
    status, _, _ = http("DELETE", "/restop-test/calls")
    assert status == 200
    http("POST", "/restop-test/faults", {"action": "StopDBInstance", "count": 1})
    t0 = time.time()
    rds.describe_db_instances(DBInstanceIdentifier="db-a")
    rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": ["db-src", "db-rep"]}])
    rds.list_tags_for_resource(ResourceName=arn("db", "db-a"))
    error_code(lambda: rds.stop_db_instance(DBInstanceIdentifier="db-src"))
    rds.describe_db_clusters(DBClusterIdentifier="cl-a")
    _, _, body = http("GET", "/restop-test/calls")
    calls = json.loads(body)
    summary = [(c["action"], c["resource"], c["fault"]) for c in calls]
    assert summary == [
        ("DescribeDBInstances", "db-a", False),
        ("DescribeDBInstances", "db-src", False),
        ("ListTagsForResource", arn("db", "db-a"), False),
        ("StopDBInstance", "db-src", True),
        ("DescribeDBClusters", "cl-a", False),
    ], summary
    assert calls[1]["resources"] == ["db-src", "db-rep"], calls[1]
    assert all(c["service"] == "rds" for c in calls)
    assert all(t0 - 1 <= c["at"] <= time.time() + 1 for c in calls), calls
    assert [c["status"] for c in calls] == [200, 200, 200, 400, 200], calls
    status, _, body = http("DELETE", "/restop-test/calls")
    assert json.loads(body) == {"cleared": 5}
    _, _, body = http("GET", "/restop-test/calls")
    assert json.loads(body) == []


@check
def stepfunctions_throttling_json_fault() -> None:
    sfn = client("stepfunctions")
    machine = sfn.create_state_machine(
        name="sm-fault", roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    http("POST", "/restop-test/faults", {"action": "StartExecution", "count": 1, "code": "ThrottlingException",
                                         "status": 400, "message": "Rate exceeded"})
    try:
        sfn.start_execution(stateMachineArn=machine, name="e1", input="{}")
        raise AssertionError("StartExecution not faulted")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ThrottlingException", error.response
        assert error.response["Error"]["Message"] == "Rate exceeded"
    # raw wire format
    http("POST", "/restop-test/faults", {"action": "StartExecution", "count": 1, "code": "ThrottlingException",
                                         "status": 400, "message": "Rate exceeded"})
    status, headers, body = http(
        "POST", "/", data=json.dumps({"stateMachineArn": machine}).encode(),
        headers={"X-Amz-Target": "AWSStepFunctions.StartExecution",
                 "Content-Type": "application/x-amz-json-1.0"})
    assert status == 400
    assert headers.get("Content-Type") == "application/x-amz-json-1.0", headers
    assert json.loads(body) == {"__type": "ThrottlingException", "message": "Rate exceeded"}, body
    execution = sfn.start_execution(stateMachineArn=machine, name="e1", input="{}")
    assert execution["executionArn"].endswith(":e1")
    _, _, body = http("GET", "/restop-test/calls")
    last = json.loads(body)[-3:]
    assert [(c["action"], c["resource"], c["fault"]) for c in last] == [
        ("StartExecution", machine, True), ("StartExecution", machine, True), ("StartExecution", machine, False),
    ], last


@check
def stepfunctions_interpreter_through_middleware() -> None:
    status, _, body = http("POST", "/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
    assert status in (200, 201), (status, body)
    sfn = client("stepfunctions")
    machine = sfn.create_state_machine(
        name="sm-run", roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
        definition=json.dumps({"StartAt": "P", "States": {
            "P": {"Type": "Pass", "Result": {"ok": True}, "ResultPath": "$.r", "End": True}}}),
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"x": 1}))["executionArn"]
    wait_for(lambda: sfn.describe_execution(executionArn=execution)["status"], "SUCCEEDED", 10)
    output = json.loads(sfn.describe_execution(executionArn=execution)["output"])
    assert output == {"x": 1, "r": {"ok": True}}, output


@check
def stepfunctions_rds_task_goes_through_middleware() -> None:
    rds = client("rds")
    create_instance(rds, "db-sfn")
    sfn = client("stepfunctions")
    machine = sfn.create_state_machine(
        name="sm-rds", roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
        definition=json.dumps({"StartAt": "Stop", "States": {"Stop": {
            "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:rds:stopDBInstance",
            "Parameters": {"DBInstanceIdentifier.$": "$.id"},
            "ResultSelector": {"ok": True}, "End": True}}}),
    )["stateMachineArn"]
    http("DELETE", "/restop-test/calls")
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"id": "db-sfn"}))["executionArn"]
    wait_for(lambda: sfn.describe_execution(executionArn=execution)["status"], "SUCCEEDED", 10)
    assert instance_status(rds, "db-sfn") == "stopping"
    _, _, body = http("GET", "/restop-test/calls")
    calls = [(c["action"], c["resource"]) for c in json.loads(body)]
    assert ("StopDBInstance", "db-sfn") in calls, calls


@check
def moto_api_reset_passes_through() -> None:
    status, _, _ = http("POST", "/moto-api/reset")
    assert status == 200
    rds = client("rds")
    assert rds.describe_db_instances()["DBInstances"] == []


# ---------------------------------------------------------------------------------------


def main() -> int:
    env = dict(os.environ, MOTO_RDS_START_SECONDS=str(DELAY), MOTO_RDS_STOP_SECONDS=str(DELAY))
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.Popen(
        [sys.executable, LAUNCHER, "--host", "127.0.0.1", "--port", str(PORT)],
        stdout=subprocess.PIPE, env=env, text=True,
    )
    passed = failed = 0
    try:
        t0 = time.monotonic()
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        ready_ok = line == f"READY {PORT}"
        print(f"launcher: {line!r} after {time.monotonic() - t0:.2f}s")
        if not ready_ok:
            print(f"FAIL ready_line: {line!r}")
            failed += 1
            raise SystemExit
        passed += 1
        for name, fn in CHECKS:
            try:
                fn()
                passed += 1
                print(f"ok   {name}")
            except Exception:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name}")
                traceback.print_exc(limit=4)
    except SystemExit:
        pass
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
        if code == 0:
            passed += 1
            print("ok   sigterm_exits_cleanly")
        else:
            failed += 1
            print(f"FAIL sigterm_exits_cleanly: exit status {code}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
