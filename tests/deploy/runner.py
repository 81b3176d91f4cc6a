"""The smallest test runner: named checks that return a list of problems (empty: passed),
where lines starting "note: " are information, not problems."""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from typing import Callable


@dataclass
class Check:
    group: str
    what: str
    run: Callable[[], list[str]]


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.started = time.monotonic()

    def run(self, check: Check) -> None:
        started = time.monotonic()
        try:
            lines = check.run()
        except Exception:  # a crash is a failure with its traceback
            lines = traceback.format_exc().splitlines()
        seconds = time.monotonic() - started
        # Lines starting "note: " are information, printed whatever the result.
        notes = [line for line in lines if line.startswith("note: ")]
        problems = [line for line in lines if not line.startswith("note: ")]
        if problems:
            self.failed += 1
            print(f"FAIL {check.group}: {check.what} ({seconds:.1f}s)")
            for problem in problems:
                print(f"       {problem}")
        else:
            self.passed += 1
            print(f"ok   {check.group}: {check.what} ({seconds:.1f}s)")
        for note in notes:
            print(f"       {note}")
        sys.stdout.flush()

    def summary(self) -> int:
        print(f"deploy-checks took {time.monotonic() - self.started:.1f}s")
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
