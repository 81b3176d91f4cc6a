#!/usr/bin/env python3
"""Launch moto's server for restop's integration tests, with patches.

    python tests/moto/launcher.py --host 127.0.0.1 --port PORT [--verbose]

Runs moto's own WSGI app (``moto.moto_server.werkzeug_app.DomainDispatcherApplication``
over ``create_backend_app``, served by werkzeug with moto's ``MotoRequestHandler``,
exactly as ``moto.server.main`` does) in the foreground, after patching moto:

1. RDS lifecycle over time. moto 5.2.5 flips statuses instantly; here StartDBInstance /
   StartDBCluster show ``starting`` and StopDBInstance / StopDBCluster show ``stopping``
   for a while before ``available`` / ``stopped``. Delays come from the environment
   (MOTO_RDS_START_SECONDS, MOTO_RDS_STOP_SECONDS, MOTO_RDS_CREATE_SECONDS; defaults 2, 2, 0)
   or per resource from the tags ``moto:start-seconds`` / ``moto:stop-seconds`` /
   ``moto:create-seconds``. The tag ``moto:force-status`` = ``STATUS:SECONDS`` makes the
   resource report STATUS for SECONDS from the moment the tag is set.
   Also fixed: StopDBInstance / StartDBInstance on an Aurora cluster member fail with
   InvalidParameterCombination; StopDBCluster returns ``stopping`` (moto: the old status),
   StartDBCluster returns ``starting`` (moto: ``started``); StopDBCluster fails with
   InvalidDBClusterStateFault while a member instance is not ``available``; member
   instances of a stopping/stopped/starting cluster report the cluster's status.

2. A WSGI middleware in front of moto for fault injection and a call log, under
   ``/restop-test/`` (see README.md beside this file).

3. SNS subscriptions that wait for confirmation. moto confirms every HTTP(S) subscription
   at once; ``POST /restop-test/sns-pending`` makes the subscriptions to an endpoint list
   as ``PendingConfirmation``, as SNS lists one whose confirmation never came.

Port 0 picks a free port. One line ``READY <port>`` goes to stdout once the socket
listens. SIGTERM / SIGINT stop the server and exit with status 0.

The patches use moto internals: they are written against moto 5.2.5 exactly (see
requirements.txt) and the launcher refuses any other version unless
MOTO_LAUNCHER_ANY_VERSION=1.
"""

from __future__ import annotations

import argparse
import copy
import functools
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

PINNED_MOTO_VERSION = "5.2.5"

import moto  # noqa: E402

if moto.__version__ != PINNED_MOTO_VERSION and os.environ.get("MOTO_LAUNCHER_ANY_VERSION") != "1":
    sys.stderr.write(
        f"launcher.py: patches are written for moto {PINNED_MOTO_VERSION}, found {moto.__version__} "
        f"(from {os.path.dirname(moto.__file__)}). Install tests/moto/requirements.txt, "
        "or set MOTO_LAUNCHER_ANY_VERSION=1 to try anyway.\n"
    )
    sys.exit(2)

from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.rds import exceptions as rds_exceptions  # noqa: E402
from moto.rds import models as rds_models  # noqa: E402
from moto.sns import models as sns_models  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

# ---------------------------------------------------------------------------------------
# 1. RDS lifecycle
# ---------------------------------------------------------------------------------------

DEFAULT_SECONDS = {"start": 2.0, "stop": 2.0, "create": 0.0}
FORCE_STATUS_TAG = "moto:force-status"
# Statuses of a cluster that its member instances mirror (on AWS, stopping a cluster
# stops its instances, and they report the same status).
CLUSTER_STATUSES_MIRRORED_BY_MEMBERS = ("stopping", "stopped", "starting")

DBInstance = rds_models.DBInstance
DBInstanceClustered = rds_models.DBInstanceClustered
DBCluster = rds_models.DBCluster
RDSBackend = rds_models.RDSBackend


def _tag_value(resource: Any, key: str) -> str | None:
    for tag in getattr(resource, "tags", None) or []:
        if tag.get("Key") == key:
            return tag.get("Value")
    return None


def _parse_seconds(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _delay(resource: Any, kind: str) -> float:
    """Seconds that a `kind` ("start", "stop", "create") transition lasts for `resource`:
    tag moto:<kind>-seconds, else env MOTO_RDS_<KIND>_SECONDS, else the default."""
    from_tag = _parse_seconds(_tag_value(resource, f"moto:{kind}-seconds"))
    if from_tag is not None:
        return from_tag
    from_env = _parse_seconds(os.environ.get(f"MOTO_RDS_{kind.upper()}_SECONDS"))
    if from_env is not None:
        return from_env
    return DEFAULT_SECONDS[kind]


def _begin_transition(resource: Any, shown: str, seconds: float) -> None:
    """Show `shown` for `seconds`; afterwards the base status (already set by moto to
    the final one) shows again."""
    if seconds > 0:
        resource.__dict__["_lc_transition"] = (shown, time.monotonic() + seconds)
    else:
        resource.__dict__.pop("_lc_transition", None)


def _apply_force_tag(resource: Any, tags: Iterable[dict[str, str]] | None) -> None:
    """If `tags` sets moto:force-status = STATUS[:SECONDS], force STATUS from now on
    for SECONDS (for ever without SECONDS, until the tag is set again or removed)."""
    for tag in tags or []:
        if tag.get("Key") != FORCE_STATUS_TAG:
            continue
        value = tag.get("Value") or ""
        status, sep, seconds_text = value.rpartition(":")
        if not sep:
            status, seconds = value, None
        else:
            seconds = _parse_seconds(seconds_text)
            if seconds is None:
                sys.stderr.write(f"launcher.py: ignoring malformed {FORCE_STATUS_TAG}={value!r}\n")
                continue
        if not status:
            resource.__dict__.pop("_lc_forced", None)
            continue
        until = None if seconds is None else time.monotonic() + seconds
        resource.__dict__["_lc_forced"] = (status, until)


def _own_status(self: Any) -> str:
    """Status of an instance or cluster: forced status, else transitional status,
    else the base status that moto's code last assigned."""
    now = time.monotonic()
    forced = self.__dict__.get("_lc_forced")
    if forced is not None:
        status, until = forced
        if until is None or now < until:
            return status
        self.__dict__.pop("_lc_forced", None)
    return _transition_or_base(self, now)


def _transition_or_base(self: Any, now: float) -> str:
    transition = self.__dict__.get("_lc_transition")
    if transition is not None:
        shown, until = transition
        if now < until:
            return shown
        self.__dict__.pop("_lc_transition", None)
    return self.__dict__.get("_status", "available")


def _set_status(self: Any, value: str) -> None:
    # Any assignment by moto's own code (e.g. stop_db_instance's `status = "stopped"`,
    # delete_db_instance's `status = "deleting"`) sets the base status and ends any
    # transition in progress; our wrappers below start the transition afterwards.
    self.__dict__["_status"] = value
    self.__dict__.pop("_lc_transition", None)


# --- DBInstance.status: moto 5.2.5 assigns a plain attribute (`self.status = "available"`
# in DBInstance.__init__, "stopped"/"available" in RDSBackend.stop_db_instance /
# start_db_instance). A property in its place makes the time-based status visible both to
# the response serializer (DBInstanceStatus -> attribute `status`) and to moto's own checks
# such as `if database.status != "available": raise InvalidDBInstanceStateError`.
DBInstance.status = property(_own_status, _set_status)  # type: ignore[assignment]


def _clustered_status(self: Any) -> str:
    # Aurora member: its own forced status first, then the cluster's stop/start state.
    forced = self.__dict__.get("_lc_forced")
    if forced is not None and (forced[1] is None or time.monotonic() < forced[1]):
        return forced[0]
    cluster = getattr(self, "cluster", None)
    if cluster is not None:
        cluster_status = cluster.status
        if cluster_status in CLUSTER_STATUSES_MIRRORED_BY_MEMBERS:
            return cluster_status
    return _own_status(self)


DBInstanceClustered.status = property(_clustered_status, _set_status)  # type: ignore[assignment]


def _cluster_status(self: Any) -> str:
    # moto 5.2.5's DBCluster.status property reports "creating" once, then "available";
    # keep that for clusters created by paths we do not wrap (base status "creating").
    if self.__dict__.get("_status") == "creating" and "_lc_transition" not in self.__dict__:
        self.__dict__["_status"] = "available"
        return "creating"
    return _own_status(self)


# --- DBCluster.status: replaces moto's property of the same name (same storage, `_status`).
DBCluster.status = property(_cluster_status, _set_status)  # type: ignore[assignment]


def _wrap(cls: type, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: replace cls.name by the decorated function, which gets the original
    method as its first argument."""
    original = getattr(cls, name)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(original, *args, **kwargs)

        setattr(cls, name, wrapper)
        return fn

    return decorate


def _init_lifecycle(resource: Any, tags: Iterable[dict[str, str]] | None) -> None:
    """Fresh resource: available, or `creating` for the create delay; forced status if
    created with the tag."""
    for key in ("_lc_transition", "_lc_forced"):
        resource.__dict__.pop(key, None)
    resource.status = "available"
    _begin_transition(resource, "creating", _delay(resource, "create"))
    _apply_force_tag(resource, tags)


# --- RDSBackend.create_db_instance: moto creates instances `available`; optionally show
# `creating` for MOTO_RDS_CREATE_SECONDS / tag moto:create-seconds.
@_wrap(RDSBackend, "create_db_instance")
def _create_db_instance(original: Callable[..., Any], self: Any, db_kwargs: dict[str, Any]) -> Any:
    database = original(self, db_kwargs)
    _init_lifecycle(database, db_kwargs.get("tags"))
    return database


# --- RDSBackend.create_db_instance_read_replica: moto makes the replica with
# copy.copy(primary), which would also copy the primary's transition / forced status.
@_wrap(RDSBackend, "create_db_instance_read_replica")
def _create_read_replica(original: Callable[..., Any], self: Any, db_kwargs: dict[str, Any]) -> Any:
    replica = original(self, db_kwargs)
    _init_lifecycle(replica, db_kwargs.get("tags"))
    return replica


def _refuse_aurora_member(self: Any, db_instance_identifier: str) -> None:
    # moto 5.2.5 lets StopDBInstance/StartDBInstance act on an Aurora cluster member;
    # AWS refuses with InvalidParameterCombination (the cluster must be stopped instead).
    self._validate_db_identifier(db_instance_identifier)
    database = self.describe_db_instances(db_instance_identifier)[0]  # DBInstanceNotFound
    if isinstance(database, DBInstanceClustered):
        raise rds_exceptions.InvalidParameterCombination(
            f"{database.engine} DB instances are not eligible for stopping and starting."
        )


# --- RDSBackend.stop_db_instance: moto checks `status != "available"` (our property makes
# a `starting` or forced status fail with InvalidDBInstanceState) and sets "stopped";
# we then show `stopping` for the stop delay.
@_wrap(RDSBackend, "stop_db_instance")
def _stop_db_instance(
    original: Callable[..., Any],
    self: Any,
    db_instance_identifier: str,
    db_snapshot_identifier: str | None = None,
) -> Any:
    _refuse_aurora_member(self, db_instance_identifier)
    database = original(self, db_instance_identifier, db_snapshot_identifier)
    _begin_transition(database, "stopping", _delay(database, "stop"))
    return database


# --- RDSBackend.start_db_instance: moto checks `status != "stopped"` and sets "available";
# we then show `starting` for the start delay.
@_wrap(RDSBackend, "start_db_instance")
def _start_db_instance(original: Callable[..., Any], self: Any, db_instance_identifier: str) -> Any:
    _refuse_aurora_member(self, db_instance_identifier)
    database = original(self, db_instance_identifier)
    _begin_transition(database, "starting", _delay(database, "start"))
    return database


# --- RDSBackend.create_db_cluster: base status `available` right away (moto: "creating"
# shown once), `creating` for the create delay if one is set.
@_wrap(RDSBackend, "create_db_cluster")
def _create_db_cluster(original: Callable[..., Any], self: Any, kwargs: dict[str, Any]) -> Any:
    cluster = original(self, kwargs)
    _init_lifecycle(cluster, kwargs.get("tags"))
    return cluster


# --- RDSBackend.stop_db_cluster: moto checks `status not in ["available"]`
# (InvalidDBClusterStateFault, with the status in the message as on AWS), sets "stopped"
# and returns a deep copy taken BEFORE the change (bug: old status in the response).
# We add AWS's refusal while a member instance is not available, start the `stopping`
# transition and return the cluster itself.
@_wrap(RDSBackend, "stop_db_cluster")
def _stop_db_cluster(original: Callable[..., Any], self: Any, cluster_identifier: str) -> Any:
    cluster = self.clusters.get(cluster_identifier)
    if cluster is not None and cluster.status == "available":
        for member in cluster._members:
            if member.status != "available":
                raise rds_exceptions.InvalidDBClusterStateFault(
                    f"DbCluster {cluster.db_cluster_identifier} cannot be stopped: "
                    f"DB instance {member.db_instance_identifier} is in {member.status} state "
                    "but expected it to be one of available."
                )
    original(self, cluster_identifier)
    cluster = self.clusters[cluster_identifier]
    _begin_transition(cluster, "stopping", _delay(cluster, "stop"))
    return cluster


# --- RDSBackend.start_db_cluster: moto checks `status != "stopped"`, sets "available" and
# returns a deep copy whose status is "started" (not an AWS status). We start the
# `starting` transition and return the cluster itself.
@_wrap(RDSBackend, "start_db_cluster")
def _start_db_cluster(original: Callable[..., Any], self: Any, cluster_identifier: str) -> Any:
    original(self, cluster_identifier)
    cluster = self.clusters[cluster_identifier]
    _begin_transition(cluster, "starting", _delay(cluster, "start"))
    return cluster


# --- RDSBackend.add_tags_to_resource / remove_tags_from_resource: the tags are stored by
# moto as usual (ListTagsForResource shows them); moto:force-status also arms or clears
# the forced status of an instance or cluster.
@_wrap(RDSBackend, "add_tags_to_resource")
def _add_tags(original: Callable[..., Any], self: Any, arn: str, tags: list[dict[str, str]]) -> Any:
    result = original(self, arn, tags)
    resource = self._get_resource_for_tagging(arn)
    if isinstance(resource, (DBInstance, DBCluster)):
        _apply_force_tag(resource, tags)
    return result


@_wrap(RDSBackend, "remove_tags_from_resource")
def _remove_tags(original: Callable[..., Any], self: Any, arn: str, tag_keys: list[str]) -> Any:
    result = original(self, arn, tag_keys)
    if FORCE_STATUS_TAG in (tag_keys or []):
        resource = self._get_resource_for_tagging(arn)
        if isinstance(resource, (DBInstance, DBCluster)):
            resource.__dict__.pop("_lc_forced", None)
    return result


# ---------------------------------------------------------------------------------------
# 3. SNS subscriptions pending confirmation
# ---------------------------------------------------------------------------------------

PENDING_ENDPOINTS: set[str] = set()


@_wrap(sns_models.SNSBackend, "list_subscriptions_by_topic")
def _list_subscriptions_by_topic(original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    subscriptions, next_token = original(self, *args, **kwargs)
    shown = []
    for subscription in subscriptions:
        if subscription.endpoint in PENDING_ENDPOINTS:
            subscription = copy.copy(subscription)
            subscription.arn = "PendingConfirmation"
        shown.append(subscription)
    return shown, next_token


# ---------------------------------------------------------------------------------------
# 2. Fault injection and call log
# ---------------------------------------------------------------------------------------

CONTROL_PREFIX = "/restop-test/"
MAX_BODY_TO_INSPECT = 16 * 1024 * 1024

QUERY_NAMESPACES = {
    "rds": "http://rds.amazonaws.com/doc/2014-10-31/",
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}
CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")
# Form parameters that name the resource of an RDS (or other awsquery) call, in order.
QUERY_RESOURCE_PARAMS = (
    "DBInstanceIdentifier",
    "DBClusterIdentifier",
    "ResourceName",
    "SourceDBInstanceIdentifier",
    "TopicArn",
)
# Filter names whose values name resources (DescribeDBInstances / DescribeDBClusters).
QUERY_RESOURCE_FILTERS = ("db-instance-id", "db-cluster-id")
# JSON members that name the resource of a Step Functions (or other JSON) call, in order.
JSON_RESOURCE_MEMBERS = ("stateMachineArn", "executionArn", "resourceArn", "name")


class ControlState:
    """Armed faults and the call log, shared by all request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []

    def take_fault(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The first armed fault matching `call`, with one use consumed."""
        with self.lock:
            for fault in self.faults:
                if fault["action"] != call["action"]:
                    continue
                if fault.get("service") and fault["service"] != call["service"]:
                    continue
                if fault.get("resource") and fault["resource"] not in call["resources"]:
                    continue
                prefix = fault.get("access_key_prefix")
                if prefix and not (call["access_key"] or "").startswith(prefix):
                    continue
                fault["remaining"] -= 1
                if fault["remaining"] <= 0:
                    self.faults.remove(fault)
                return dict(fault)
        return None


def _json_response(start_response: Callable[..., Any], status: int, payload: Any) -> list[bytes]:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
    start_response(
        f"{status} {reason.get(status, 'Status')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """Read the request body and put an unread copy back for moto (wsgi.input re-wrapped
    in BytesIO, CONTENT_LENGTH set to what was read). None if it is not read."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    stream = environ.get("wsgi.input")
    if stream is None:
        return None
    if length_text.isdigit():
        length = int(length_text)
        if length > MAX_BODY_TO_INSPECT:
            return None
        body = stream.read(length) if length else b""
    elif environ.get("wsgi.input_terminated"):
        # Chunked upload decoded by werkzeug: the stream ends at the end of the body.
        body = stream.read()
        environ.pop("HTTP_TRANSFER_ENCODING", None)
    else:
        return None
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _describe_call(environ: dict[str, Any]) -> dict[str, Any] | None:
    """Action, service, protocol and named resources of an AWS API request (None if the
    request is not one, e.g. /moto-api/)."""
    path = environ.get("PATH_INFO", "")
    if path.startswith("/moto-api"):
        return None
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = CREDENTIAL_SCOPE.search(auth)
    access_key = scope.group(1) if scope else None
    service = scope.group(2) if scope else None
    content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    target = environ.get("HTTP_X_AMZ_TARGET")
    resources: list[str] = []

    if target:
        # JSON protocol: X-Amz-Target: AWSStepFunctions.StartExecution
        prefix, _, action = target.rpartition(".")
        if service is None and prefix.startswith("AWSStepFunctions"):
            service = "states"
        body = _read_body(environ)
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        if isinstance(payload, dict):
            for member in JSON_RESOURCE_MEMBERS:
                value = payload.get(member)
                if isinstance(value, str) and value not in resources:
                    resources.append(value)
        protocol = "json"
        json_content_type = content_type if content_type.startswith("application/x-amz-json") else None
        call_params = payload if isinstance(payload, dict) else {}
    else:
        params = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if environ.get("REQUEST_METHOD") == "POST" and content_type == "application/x-www-form-urlencoded":
            body = _read_body(environ)
            if body:
                for key, values in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
                    params.setdefault(key, []).extend(values)
        actions = params.get("Action")
        if not actions:
            return None
        action = actions[0]
        for name in QUERY_RESOURCE_PARAMS:
            for value in params.get(name, []):
                if value and value not in resources:
                    resources.append(value)
        # Filters.Filter.N.Name=db-instance-id, Filters.Filter.N.Values.Value.M=id
        for key, values in params.items():
            match = re.fullmatch(r"Filters\.Filter\.(\d+)\.Name", key)
            if not match or values[0] not in QUERY_RESOURCE_FILTERS:
                continue
            prefix = f"Filters.Filter.{match.group(1)}.Values."
            for value_key in sorted(k for k in params if k.startswith(prefix)):
                for value in params[value_key]:
                    if value and value not in resources:
                        resources.append(value)
        protocol = "query"
        json_content_type = None
        call_params = {key: values[0] for key, values in params.items() if values}

    return {
        "action": action,
        "service": service,
        "access_key": access_key,
        "resource": resources[0] if resources else None,
        "resources": resources,
        "protocol": protocol,
        "json_content_type": json_content_type,
        "params": call_params,
    }


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _fault_response(
    start_response: Callable[..., Any], call: dict[str, Any], fault: dict[str, Any]
) -> list[bytes]:
    request_id = str(uuid.uuid4())
    status = int(fault["status"])
    if call["protocol"] == "json":
        body = json.dumps({"__type": fault["code"], "message": fault["message"]}).encode()
        content_type = call["json_content_type"] or "application/x-amz-json-1.0"
    else:
        namespace = QUERY_NAMESPACES.get(call["service"] or "rds", QUERY_NAMESPACES["rds"])
        error_type = "Receiver" if status >= 500 else "Sender"
        body = (
            f'<ErrorResponse xmlns="{namespace}">'
            f"<Error><Type>{error_type}</Type><Code>{_xml_escape(fault['code'])}</Code>"
            f"<Message>{_xml_escape(fault['message'])}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    reasons = {400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error",
               502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    start_response(
        f"{status} {reasons.get(status, 'Error')}",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", request_id),
        ],
    )
    return [body]


def _parse_fault(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("action"), str) or not payload["action"]:
        raise ValueError('a fault needs "action": the API action name, e.g. "DescribeDBInstances"')
    count = payload.get("count", 1)
    status = payload.get("status", 400)
    delay = payload.get("delay_seconds", 0)
    if not isinstance(count, int) or count < 1:
        raise ValueError('"count" must be an integer >= 1')
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError('"status" must be an HTTP error status (400..599)')
    if not isinstance(delay, (int, float)) or delay < 0:
        raise ValueError('"delay_seconds" must be a number >= 0')
    code = payload.get("code", "Throttling")
    fault = {
        "action": payload["action"],
        "count": count,
        "remaining": count,
        "code": code,
        "status": status,
        "message": payload.get("message", "Rate exceeded"),
        "delay_seconds": float(delay),
        "service": payload.get("service"),
        "resource": payload.get("resource"),
        "access_key_prefix": payload.get("access_key_prefix"),
    }
    if code is None and not delay:
        raise ValueError('"code": null (pass through) only makes sense with "delay_seconds"')
    return fault


class RestopTestMiddleware:
    """WSGI middleware: /restop-test/faults and /restop-test/calls are answered here,
    everything else is logged, faulted if a fault is armed for it, or passed to moto."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.state = ControlState()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX) or path == CONTROL_PREFIX.rstrip("/"):
            return self.control(environ, start_response)

        call = _describe_call(environ)
        if call is None:
            return self.app(environ, start_response)

        entry: dict[str, Any] = {
            "action": call["action"],
            "service": call["service"],
            "access_key": call["access_key"],
            "resource": call["resource"],
            "resources": call["resources"],
            "params": call["params"],
            "at": time.time(),
            "fault": False,
            "status": None,
        }
        fault = self.state.take_fault(call)
        if fault is not None and fault["code"] is not None:
            entry["fault"] = True
            entry["status"] = fault["status"]
        with self.state.lock:
            self.state.calls.append(entry)

        if fault is not None and fault["delay_seconds"]:
            time.sleep(fault["delay_seconds"])
        if fault is not None and fault["code"] is not None:
            return _fault_response(start_response, call, fault)

        def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            try:
                entry["status"] = int(status.split(" ", 1)[0])
            except ValueError:
                pass
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, recording_start_response)

    def control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "").rstrip("/")
        method = environ.get("REQUEST_METHOD", "GET")
        state = self.state
        if path == "/restop-test/faults":
            if method == "POST":
                body = _read_body(environ) or b""
                try:
                    payload = json.loads(body or b"null")
                    faults = [_parse_fault(p) for p in (payload if isinstance(payload, list) else [payload])]
                except ValueError as error:
                    return _json_response(start_response, 400, {"error": str(error)})
                with state.lock:
                    state.faults.extend(faults)
                return _json_response(start_response, 200, {"armed": faults})
            if method == "GET":
                with state.lock:
                    return _json_response(start_response, 200, [dict(f) for f in state.faults])
            if method == "DELETE":
                with state.lock:
                    cleared = len(state.faults)
                    state.faults.clear()
                return _json_response(start_response, 200, {"cleared": cleared})
            return _json_response(start_response, 405, {"error": "use GET, POST or DELETE"})
        if path == "/restop-test/calls":
            if method == "GET":
                with state.lock:
                    return _json_response(start_response, 200, [dict(c) for c in state.calls])
            if method == "DELETE":
                with state.lock:
                    cleared = len(state.calls)
                    state.calls.clear()
                return _json_response(start_response, 200, {"cleared": cleared})
            return _json_response(start_response, 405, {"error": "use GET or DELETE"})
        if path == "/restop-test/rds-events":
            if method != "POST":
                return _json_response(start_response, 405, {"error": "use POST"})
            try:
                payload = json.loads(_read_body(environ) or b"null")
                added = [_add_rds_event(p) for p in (payload if isinstance(payload, list) else [payload])]
            except (ValueError, KeyError, TypeError) as error:
                return _json_response(start_response, 400, {"error": str(error)})
            return _json_response(start_response, 200, {"added": added})
        if path == "/restop-test/sns-pending":
            if method != "POST":
                return _json_response(start_response, 405, {"error": "use POST"})
            payload = json.loads(_read_body(environ) or b"null")
            if not isinstance(payload, dict) or not isinstance(payload.get("endpoint"), str):
                return _json_response(start_response, 400, {"error": 'give {"endpoint": URL}'})
            PENDING_ENDPOINTS.add(payload["endpoint"])
            return _json_response(start_response, 200, {"pending": sorted(PENDING_ENDPOINTS)})
        return _json_response(start_response, 404, {"error": f"unknown control route {path}"})


# RDS's own messages for the events moto never records (the AWS RDS user guide's event
# tables): a forced start after seven days stopped, and the end of any start or stop.
RDS_EVENT_MESSAGES = {
    "RDS-EVENT-0154": "DB instance is being started due to it exceeding the maximum allowed time being stopped.",
    "RDS-EVENT-0153": "DB cluster is being started due to it exceeding the maximum allowed time being stopped.",
    "RDS-EVENT-0088": "The DB instance has been started.",
    "RDS-EVENT-0151": "The DB cluster has been started.",
    "RDS-EVENT-0087": "The DB instance has been stopped.",
    "RDS-EVENT-0150": "The DB cluster has been stopped.",
}


class _InjectedEvent(rds_models.Event):
    """An event as DescribeEvents lists it, made by a test instead of by moto."""

    def __init__(self, source_type: str, identifier: str, arn: str, message: str, date: Any) -> None:
        self.source_identifier = identifier
        self.source_type = source_type
        self.message = message
        self.event_categories = ["notification"]
        self.source_arn = arn
        self.date = date


def _add_rds_event(payload: Any) -> dict[str, Any]:
    """Adds an event to moto's RDS event log (what DescribeEvents answers). Payload:
    {"event_id": "RDS-EVENT-0154" (or "message"), "source_type": "db-instance" |
    "db-cluster", "source_identifier", "account" (default 123456789012), "region"
    (default us-east-1), "seconds_ago" (default 0)}."""
    from datetime import datetime, timedelta, timezone

    if not isinstance(payload, dict):
        raise ValueError("an event is a JSON object")
    source_type = payload["source_type"]
    if source_type not in ("db-instance", "db-cluster"):
        raise ValueError("source_type must be db-instance or db-cluster")
    identifier = payload["source_identifier"]
    account = payload.get("account", "123456789012")
    region = payload.get("region", "us-east-1")
    message = payload.get("message") or RDS_EVENT_MESSAGES[payload["event_id"]]
    date = datetime.now(timezone.utc) - timedelta(seconds=float(payload.get("seconds_ago", 0)))
    kind = "db" if source_type == "db-instance" else "cluster"
    arn = f"arn:aws:rds:{region}:{account}:{kind}:{identifier}"
    backend = rds_models.rds_backends[account][region]
    backend.events.append(_InjectedEvent(source_type, identifier, arn, message, date))
    return {"source_arn": arn, "message": message, "date": date.isoformat()}


# ---------------------------------------------------------------------------------------
# 3. Server
# ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto server with restop's test patches")
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    app = RestopTestMiddleware(DomainDispatcherApplication(create_backend_app))
    # Same server as moto.server.main / ThreadedMotoServer: threaded werkzeug server
    # with moto's request handler.
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    # moto builds URLs from MOTO_PORT: the Step Functions interpreter's aws-sdk tasks call
    # http://localhost:$MOTO_PORT, so they go through the middleware too.
    os.environ["MOTO_PORT"] = str(port)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    try:
        # Short poll interval: the signal may land on a request thread, and then the
        # main thread notices it only when its select() times out.
        server.serve_forever(poll_interval=0.1)
    except SystemExit:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
