"""Checks of restop's runtimes outside AWS: deploy/systemd/restop.service with systemd-analyze
(verify, and security --offline=yes at most MAX_EXPOSURE, with and without the port-443
capability), the unit's settings against restop's shutdown and its environment file, and the
container image (Dockerfile, docker-compose.yml) run read-only with state under
/var/lib/restop only."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from runner import Check

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "restop.service"
ENV_EXAMPLE = ROOT / "deploy" / "systemd" / "restop.env.example"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
STATE_DIR = "/var/lib/restop"
MAX_EXPOSURE = 2.5
STOP_TIMEOUT_SECONDS = 40  # restop's shutdown: requests (14 s) and the steps in flight (25 s)
CAPABILITY_LINES = ("CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE")


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> every value of the [Service] section (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def variants() -> dict[str, str]:
    """The unit as shipped (restop's own HTTPS on 443) and as its comment says to run it
    behind a proxy on an unprivileged port (no capability at all)."""
    text = UNIT.read_text()
    missing = [line for line in CAPABILITY_LINES if line not in text.splitlines()]
    if missing:
        raise ValueError(f"the unit lacks {missing}")
    proxied = text.replace(CAPABILITY_LINES[0], "CapabilityBoundingSet=").replace(CAPABILITY_LINES[1] + "\n", "")
    return {"port 443": text, "behind a proxy": proxied}


def systemd_analyze() -> str | None:
    return shutil.which("systemd-analyze")


def runnable_copy(directory: Path, text: str) -> Path:
    """The unit with ExecStart pointing at a binary that exists here: verify refuses a missing
    one. restop's own debug build when there is one, else true(1): verify only needs an
    executable."""
    built = ROOT / "target" / "debug" / "restop"
    binary = str(built) if built.is_file() else shutil.which("true")
    path = directory / "restop.service"
    path.write_text(re.sub(r"^ExecStart=/usr/local/bin/restop ", f"ExecStart={binary} ", text, flags=re.MULTILINE))
    return path


def verify() -> list[str]:
    exe = systemd_analyze()
    if not exe:
        return ["systemd-analyze not found (Debian package systemd; scripts/deploy-checks installs it)"]
    problems = []
    for variant, text in variants().items():
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([exe, "verify", str(runnable_copy(Path(tmp), text))], capture_output=True, text=True)
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or output:
            problems.append(f"{variant}: systemd-analyze verify exit {proc.returncode}: {output}")
    return problems


def security() -> list[str]:
    exe = systemd_analyze()
    if not exe:
        return ["systemd-analyze not found (Debian package systemd; scripts/deploy-checks installs it)"]
    lines = []
    for variant, text in variants().items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "restop.service"
            path.write_text(text)
            proc = subprocess.run([exe, "security", "--offline=yes", "--no-pager", str(path)], capture_output=True, text=True)
        match = re.search(r"Overall exposure level for restop\.service: (\d+(?:\.\d+)?)", proc.stdout)
        if not match:
            lines.append(f"{variant}: no exposure level in systemd-analyze security's output: {proc.stdout[-500:]} {proc.stderr}")
            continue
        exposure = float(match.group(1))
        if exposure > MAX_EXPOSURE:
            worst = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("✗")]
            lines.append(f"{variant}: exposure {exposure} > {MAX_EXPOSURE}; unmet: {worst}")
        lines.append(f"note: {variant}: exposure {exposure} (at most {MAX_EXPOSURE})")
    return lines


def unit_settings_match_restop() -> list[str]:
    problems = []
    settings = unit_settings(UNIT.read_text())
    want = {
        "Type": ["exec"],
        "User": ["restop"],
        "ExecStart": ["/usr/local/bin/restop serve"],
        "EnvironmentFile": ["/etc/restop/restop.env"],
        "StateDirectory": ["restop"],
        "WorkingDirectory": [STATE_DIR],
        "Restart": ["on-failure"],
        "KillSignal": ["SIGTERM"],
        "TimeoutStopSec": [f"{STOP_TIMEOUT_SECONDS}s"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "PrivateTmp": ["yes"],
        "PrivateDevices": ["yes"],
        "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
        "SystemCallFilter": ["@system-service", "~@privileged @resources"],
        "CapabilityBoundingSet": ["CAP_NET_BIND_SERVICE"],
        "AmbientCapabilities": ["CAP_NET_BIND_SERVICE"],
    }
    for key, value in want.items():
        if settings.get(key) != value:
            problems.append(f"{key}={settings.get(key)}, expected {value}")
    for key in ("ReadWritePaths", "DynamicUser"):
        if key in settings:
            problems.append(f"{key} is set: restop writes only its StateDirectory")
    return problems


def env_example_fits_the_unit() -> list[str]:
    problems = []
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    port = int(env.get("RESTOP_LISTEN", ":0").rsplit(":", 1)[1])
    # The capability is there for a privileged port, and only then.
    if port >= 1024:
        problems.append(f"RESTOP_LISTEN {env.get('RESTOP_LISTEN')}: the shipped unit grants CAP_NET_BIND_SERVICE for a port below 1024")
    if not (env.get("RESTOP_TLS_CERT") and env.get("RESTOP_TLS_KEY")):
        problems.append("port 443 without RESTOP_TLS_CERT and RESTOP_TLS_KEY")
    if not env.get("DATABASE_URL", "").startswith(f"sqlite://{STATE_DIR}/"):
        problems.append(f"DATABASE_URL {env.get('DATABASE_URL')!r} is not in the unit's state directory {STATE_DIR}")
    if env.get("RESTOP_METRICS_LISTEN", "").split(":")[0] not in ("127.0.0.1", "[::1]"):
        problems.append(f"RESTOP_METRICS_LISTEN {env.get('RESTOP_METRICS_LISTEN')!r} is reachable from outside the host")
    return problems


def image_runs_read_only() -> list[str]:
    problems = []
    runtime = DOCKERFILE.read_text().split("\nFROM ")[-1]  # the last stage is the runtime image
    instructions = [line for line in runtime.splitlines() if line and not line.startswith((" ", "#"))]
    if any(line.startswith("HEALTHCHECK") for line in instructions):
        problems.append("the runtime image has a HEALTHCHECK: the load balancer checks /readyz")
    user = [line.split()[1] for line in instructions if line.startswith("USER ")]
    if user != ["10001"]:
        problems.append(f"USER {user}: the runtime image must run as the numeric non-root user 10001")
    if f'VOLUME ["{STATE_DIR}"]' not in instructions:
        problems.append(f"no VOLUME for {STATE_DIR}: with a read-only root filesystem SQLite needs it writable")
    if f"WORKDIR {STATE_DIR}" not in instructions or f"DATABASE_URL=sqlite://{STATE_DIR}/restop.db" not in runtime:
        problems.append(f"the image's default database is not under {STATE_DIR}")

    restop = yaml.safe_load(COMPOSE.read_text())["services"]["restop"]
    want = {
        "read_only": True,
        "user": "10001:10001",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "stop_grace_period": f"{STOP_TIMEOUT_SECONDS}s",
    }
    for key, value in want.items():
        if restop.get(key) != value:
            problems.append(f"docker-compose.yml restop {key}: {restop.get(key)!r}, expected {value!r}")
    if restop.get("stop_signal", "SIGTERM") != "SIGTERM":
        problems.append(f"docker-compose.yml stop_signal {restop.get('stop_signal')}")
    return problems


def checks() -> list[Check]:
    return [
        Check("systemd", "systemd-analyze verify deploy/systemd/restop.service (port 443, behind a proxy)", verify),
        Check("systemd", f"systemd-analyze security --offline=yes: exposure at most {MAX_EXPOSURE}", security),
        Check("systemd", "the unit: own user, state directory, restart, SIGTERM and stop timeout, sandbox", unit_settings_match_restop),
        Check("systemd", "restop.env.example fits the unit (privileged port with TLS, SQLite in the state directory)", env_example_fits_the_unit),
        Check("image", "Dockerfile and docker-compose.yml: read-only, non-root, no HEALTHCHECK, state under /var/lib/restop", image_runs_read_only),
    ]
