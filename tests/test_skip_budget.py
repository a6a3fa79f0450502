"""The suite's own check: a run with more than a handful of skipped tests fails."""

import pytest

pytest_plugins = ("pytester",)


def _suite(pytester: pytest.Pytester, n_skipped: int) -> None:
    pytester.makeconftest(
        "import skip_budget\n\n\ndef pytest_configure(config):\n    skip_budget.register(config)\n"
    )
    tests = [f"def test_skipped_{k}():\n    pytest.skip('no frobnicator here')\n"
             for k in range(n_skipped)]  # fmt: skip
    pytester.makepyfile("import pytest\n\n\ndef test_runs():\n    pass\n\n\n" + "\n\n".join(tests))


def test_too_many_skips_fail_the_run_and_say_why(pytester):
    _suite(pytester, 6)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*6 tests skipped, more than the 5 allowed: the run fails*", "*6 x no frobnicator here*"]
    )


def test_a_handful_of_skips_pass(pytester):
    _suite(pytester, 5)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=5)
