"""Prometheus' two configurations load: the local run's, as gateway.render writes it for
a layout, and docker-compose's. promtool also checks the rule files they name."""

from pathlib import Path

from gateway import render
from gateway.layout import Layout
from tests.monitoring.test_rules import MONITORING, run_promtool


def test_the_local_runs_configuration_is_valid(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(render.render_prometheus(Layout(run_dir=tmp_path, predictors=5)))

    result = run_promtool("check", "config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    # Its rule files are the repository's: checked, so found.
    assert "SUCCESS: " in result.stdout and "rules found" in result.stdout, result.stdout


def test_the_compose_configuration_is_valid():
    result = run_promtool("check", "config", str(MONITORING / "prometheus.yml"))

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_configuration_is_refused(tmp_path):
    config = Path(tmp_path) / "prometheus.yml"
    config.write_text("scrape_configs:\n  - job_name: x\n    static_configs: [{targets: 7}]\n")

    assert run_promtool("check", "config", str(config)).returncode != 0
