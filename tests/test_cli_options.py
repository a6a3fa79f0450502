"""Global CLI options: help, plugin choice, config errors, exit statuses."""

import subprocess
import sys

import pytest

COMMANDS = ["add-image", "add-directory", "build-index", "photos", "similar", "clusters",
            "failures", "render", "average", "serve", "plugins", "demo", "duplicates"]


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "leitmotiv", *args], capture_output=True, text=True, env=env
    )


def test_help_lists_every_command():
    result = run("--help")
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()
              if line.strip()}
    assert set(COMMANDS) <= listed


def test_plugins_lists_the_builtins():
    result = run("plugins")
    assert result.returncode == 0
    for kind, name in [("featurizer", "gmm"), ("divergence", "js"), ("clusterer", "affinity")]:
        assert any(line.split()[:2] == [kind, name] for line in result.stdout.splitlines())


@pytest.mark.parametrize("flag", ["--featurizer", "--divergence", "--clusterer"])
def test_unknown_plugin_is_refused_before_any_work(tmp_path, flag):
    library = tmp_path / "lib"
    result = run("--library", str(library), flag, "nonesuch", "photos")
    assert result.returncode == 2
    assert "nonesuch" in result.stderr and "available:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not library.exists(), "no work may happen before the plugin names are checked"


def test_unknown_plugin_parameter_is_a_usage_error(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[params.clusterer.affinity]\nnonsense = 1\n")
    result = run("-c", str(config), "--library", str(tmp_path / "lib"), "photos")
    assert result.returncode == 2
    assert "nonsense" in result.stderr and "Traceback" not in result.stderr


def test_broken_config_file_is_a_usage_error(tmp_path):
    config = tmp_path / "broken.toml"
    config.write_text("library = [")
    result = run("--config", str(config), "photos")
    assert result.returncode == 2
    assert "broken.toml" in result.stderr and "Traceback" not in result.stderr


def test_failure_shows_no_traceback_unless_debug(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the library folder should be")
    # build-index creates the library (reading commands create nothing), and cannot.
    quiet = run("--library", str(blocker / "lib"), "build-index")
    assert quiet.returncode != 0 and "Traceback" not in quiet.stderr
    assert str(blocker) in quiet.stderr
    loud = run("--debug", "--library", str(blocker / "lib"), "build-index")
    assert loud.returncode != 0 and "Traceback" in loud.stderr
