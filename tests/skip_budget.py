"""A check of the suite itself: a run fails when more than a handful of tests skip.

A test may skip only for what a machine cannot offer (no PostgreSQL server to test
against, no Chromium, running as root), and says so in its reason.  Many skips mean
the suite tests far less than it reports as passed, as it did when its data lived
outside the repository; this plugin turns that into a failed run that lists why.
"""

from __future__ import annotations

from collections import Counter

import pytest

#: Skips a run may have and still pass.
MAX_SKIPS = 5


class SkipBudget:
    """Counts the skipped tests of a run; fails the run above ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reasons: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            # longrepr of a skip is (file, line, "Skipped: reason").
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.reasons.append(reason.removeprefix("Skipped: "))

    def _over(self) -> bool:
        return len(self.reasons) > self.limit

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._over() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self._over():
            return
        terminalreporter.write_sep(
            "=",
            f"{len(self.reasons)} tests skipped, more than the {self.limit} allowed: the run fails",
            red=True,
        )
        for reason, n in Counter(self.reasons).most_common():
            terminalreporter.write_line(f"{n:4d} x {reason}")


def register(config: pytest.Config, limit: int = MAX_SKIPS) -> None:
    """Install the skip budget for this run (call from ``pytest_configure``)."""
    config.pluginmanager.register(SkipBudget(limit), "leitmotiv-skip-budget")
