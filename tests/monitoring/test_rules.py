"""The Prometheus rules of monitoring/rules/ load, and behave as monitoring/tests/ expects.

promtool (Debian's prometheus package) checks the rule files and runs their unit tests.
Without it these tests fail, never skip: `make test-tools` installs it.
"""

import shutil
import subprocess

import pytest
import yaml

from tests.support import ROOT

MONITORING = ROOT / "monitoring"
# Prometheus loads every file of the folder (monitoring/prometheus-local.yml.template).
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
UNIT_TEST_FILES = sorted((MONITORING / "tests").glob("*.yml"))


def run_promtool(*arguments, cwd=MONITORING):
    """Run promtool; fail the test when it is not installed."""
    promtool = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's `prometheus` package "
                    "(`make test-tools` does, as root: apt-get install prometheus)")
    return subprocess.run([promtool, *arguments], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def load(path):
    """Read a YAML file."""
    return yaml.safe_load(path.read_text())


def rules_of(kind):
    """The names of every rule of the kind ("alert" or "record") in the rule files."""
    return {rule[kind] for path in RULE_FILES for group in load(path)["groups"]
            for rule in group["rules"] if kind in rule}


def unit_test_cases(kind):
    """Every case of the kind ("alert_rule_test" or "promql_expr_test") in the unit tests."""
    return [case for path in UNIT_TEST_FILES for group in load(path)["tests"]
            for case in group.get(kind, [])]


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_rule_file_is_valid(rule_file):
    result = run_promtool("check", "rules", str(rule_file))

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit_test_file", UNIT_TEST_FILES, ids=lambda path: path.name)
def test_unit_tests_pass(unit_test_file):
    # From the test file's folder: its rule_files are relative to it.
    result = run_promtool("test", "rules", unit_test_file.name, cwd=unit_test_file.parent)

    assert result.returncode == 0, result.stdout + result.stderr


def wrong_sample_value(unit_tests):
    """Add 1 to the first expected sample."""
    case = unit_tests["tests"][0]["promql_expr_test"][0]
    case["exp_samples"][0]["value"] += 1


def wrong_alert_label(unit_tests):
    """Expect the first firing alert with a severity no rule gives."""
    firing = next(case for group in unit_tests["tests"] for case in group["alert_rule_test"]
                  if case.get("exp_alerts"))
    firing["exp_alerts"][0]["exp_labels"]["severity"] = "wrong"


@pytest.mark.parametrize(("unit_test_name", "spoil"), [
    ("recording.test.yml", wrong_sample_value),
    ("alerts.test.yml", wrong_alert_label),
])
def test_promtool_fails_a_wrong_expectation(tmp_path, unit_test_name, spoil):
    """A copy with one expectation made wrong fails, and only that: the tests can fail."""
    unit_tests = load(MONITORING / "tests" / unit_test_name)
    unit_tests["rule_files"] = [str((MONITORING / "tests" / path).resolve())
                                for path in unit_tests["rule_files"]]
    copy = tmp_path / unit_test_name
    copy.write_text(yaml.safe_dump(unit_tests, sort_keys=False))
    as_copied = run_promtool("test", "rules", str(copy), cwd=tmp_path)
    spoil(unit_tests)
    copy.write_text(yaml.safe_dump(unit_tests, sort_keys=False))

    spoiled = run_promtool("test", "rules", str(copy), cwd=tmp_path)

    assert as_copied.returncode == 0, as_copied.stdout + as_copied.stderr
    assert spoiled.returncode != 0, spoiled.stdout + spoiled.stderr
    assert "FAILED" in spoiled.stdout + spoiled.stderr


# promtool passes a case for an alert name that no rule has, so a misspelt name would
# quietly test nothing: these two keep every case tied to a rule and every rule tested.


def test_every_alert_is_tested_firing_and_quiet():
    alerts = rules_of("alert")
    cases = unit_test_cases("alert_rule_test")
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}

    assert alerts, "no alerting rule in monitoring/rules/"
    assert (firing | quiet) - alerts == set(), "cases for alerts that no rule defines"
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested staying quiet"


def test_every_recording_rule_has_an_expected_value():
    records = rules_of("record")
    tested = {case["expr"] for case in unit_test_cases("promql_expr_test") if case["exp_samples"]}

    assert records, "no recording rule in monitoring/rules/"
    assert records - tested == set(), "recording rules without an expected sample"
