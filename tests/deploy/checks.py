#!/usr/bin/env python3
"""Checks of the deployment kit in deploy/ (run by scripts/deploy-checks, which provides the
Python environment and promtool).

    target/moto-venv/bin/python tests/deploy/checks.py [GROUP...]

Groups: templates (cfn-lint, IAM equality, state machine copy, subscription settings),
service (service.yaml's rules), monitoring (alert rules with promtool, dashboard, metric
names), moto (the templates deployed to moto's CloudFormation), runtime (the systemd unit with
systemd-analyze, the container image's settings). Default: all. Prints one line per check
and ends with "N passed, M failed"; exits 1 on any failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_monitoring  # noqa: E402
import check_moto  # noqa: E402
import check_runtime  # noqa: E402
import check_service  # noqa: E402
import check_templates  # noqa: E402
from runner import Results  # noqa: E402

GROUPS = {
    "templates": check_templates.checks,
    "service": check_service.checks,
    "monitoring": check_monitoring.checks,
    "moto": check_moto.checks,
    "runtime": check_runtime.checks,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(GROUPS)
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown:
        print(f"unknown group(s) {unknown}; groups: {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    results = Results()
    for group in chosen:
        for check in GROUPS[group]():
            results.run(check)
    return results.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
