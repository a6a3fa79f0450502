"""scripts/add-images.sh and scripts/server.sh, driven against a stand-in engine.

The real image is built and run by ``.ci/container-test`` (podman, in CI).  These
tests check what the scripts ask of the engine: which folders they mount and how,
which commands they run, and how they report failures; they need only bash.  The
stand-in records each call and runs the scripts' ``sh -c`` snippets for real, in a
folder that plays the library's volume.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the scripts need bash")

REPO_ROOT = Path(__file__).resolve().parents[1]
ADD_IMAGES = REPO_ROOT / "scripts" / "add-images.sh"
SERVER = REPO_ROOT / "scripts" / "server.sh"

# The stand-in engine: one JSON line of arguments per call into $FAKE_LOG; `run`
# exits with the status of $FAKE_STATUS_<command> (e.g. FAKE_STATUS_add_directory);
# a container started with `run -d` exists until `rm`, and says it serves unless
# $FAKE_DIES is set.
FAKE_ENGINE = r"""
import json, os, subprocess, sys
from pathlib import Path

args = sys.argv[1:]
state = Path(os.environ["FAKE_STATE"])
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
container = state / "container"
verb = args[0]
if verb == "ps":
    if container.exists() and not os.environ.get("FAKE_DIES"):
        print("c0ffee")
elif verb == "logs":
    if not os.environ.get("FAKE_DIES"):
        print("Serving /library on http://0.0.0.0:5000/")
    else:
        print("Error: cannot open the library", file=sys.stderr)
elif verb in ("stop", "rm"):
    container.unlink(missing_ok=True)
elif verb == "run":
    if "-d" in args:
        container.touch()
    elif "--entrypoint" in args:
        script = args[args.index("-c") + 1]
        volume = state / "volume"
        volume.mkdir(exist_ok=True)
        sys.exit(subprocess.run(["sh", "-c", script], cwd=volume).returncode)
    else:
        command = next(a for a in args if a in ("add-directory", "build-index"))
        sys.exit(int(os.environ.get("FAKE_STATUS_" + command.replace("-", "_"), "0")))
"""


@pytest.fixture
def engine(tmp_path):
    """Environment for the scripts with the stand-in engine, and a reader of its calls."""
    state = tmp_path / "engine"
    state.mkdir()
    program = state / "engine"
    program.write_text(f"#!{sys.executable}\n{FAKE_ENGINE}")
    program.chmod(0o755)
    log = state / "calls.jsonl"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LEITMOTIV_", "FAKE_"))
    }
    env.update(CONTAINER_ENGINE=str(program), FAKE_STATE=str(state), FAKE_LOG=str(log))

    def calls():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    return env, calls


def run(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def leitmotiv_runs(calls) -> list[list[str]]:
    """The `run` calls that run a leitmotiv command (not a shell snippet)."""
    return [c for c in calls() if c[0] == "run" and "--entrypoint" not in c and "-d" not in c]


def test_add_images_mounts_the_folder_read_only_at_its_path_then_indexes(engine, tmp_path):
    env, calls = engine
    photos = tmp_path / "my photos"
    photos.mkdir()
    result = run(ADD_IMAGES, str(photos), env=env)
    assert result.returncode == 0, result.stderr
    add, index = leitmotiv_runs(calls)
    assert add[add.index("leitmotiv") + 1 :] == ["add-directory", str(photos)]
    assert f"{photos}:{photos}:ro" in add
    assert "leitmotiv-library:/library" in add
    assert index[-2:] == ["leitmotiv", "build-index"]
    assert f"{photos}:{photos}:ro" not in index
    # The folder is noted in the volume for server.sh, once however often it is added.
    run(ADD_IMAGES, str(photos), env=env)
    noted = (tmp_path / "engine" / "volume" / "photo-folders.txt").read_text()
    assert noted == f"{photos}\n"


def test_add_images_indexes_after_some_photos_failed_and_reports_it(engine, tmp_path):
    env, calls = engine
    result = run(ADD_IMAGES, str(tmp_path), env={**env, "FAKE_STATUS_add_directory": "1"})
    assert result.returncode == 1
    assert [c[-1] for c in leitmotiv_runs(calls)] == [str(tmp_path), "build-index"]


def test_add_images_stops_on_a_usage_error(engine, tmp_path):
    env, calls = engine
    result = run(ADD_IMAGES, str(tmp_path), env={**env, "FAKE_STATUS_add_directory": "2"})
    assert result.returncode == 2
    assert [c[-1] for c in leitmotiv_runs(calls)] == [str(tmp_path)]


def test_add_images_refuses_a_missing_folder_before_calling_the_engine(engine, tmp_path):
    env, calls = engine
    missing = tmp_path / "nowhere"
    result = run(ADD_IMAGES, str(missing), env=env)
    assert result.returncode == 2
    assert f"{missing} is not a folder" in result.stderr
    assert calls() == []
    assert run(ADD_IMAGES, env=env).returncode == 2


def test_server_starts_with_init_on_loopback_with_the_added_folders_and_stops(engine, tmp_path):
    env, calls = engine
    photos, gone = tmp_path / "photos", tmp_path / "gone"
    photos.mkdir()
    gone.mkdir()
    assert run(ADD_IMAGES, str(photos), str(gone), env=env).returncode == 0
    gone.rmdir()
    started = run(SERVER, "--start", env={**env, "LEITMOTIV_PORT": "5077"})
    assert started.returncode == 0, started.stderr
    assert "http://127.0.0.1:5077/" in started.stdout
    assert f"{gone} is gone" in started.stderr
    (serve,) = [c for c in calls() if c[0] == "run" and "-d" in c]
    assert "--init" in serve
    assert serve[serve.index("-p") + 1] == "127.0.0.1:5077:5000"
    assert f"{photos}:{photos}:ro" in serve
    assert not any(str(gone) in arg for arg in serve)
    assert serve[-1] == "leitmotiv"  # the image's own command: serve --host 0.0.0.0

    again = run(SERVER, "--start", env=env)
    assert again.returncode == 1
    assert "already running" in again.stderr

    stopped = run(SERVER, "--stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert ["stop", "--time", "10", "leitmotiv-server"] in calls()
    assert not (tmp_path / "engine" / "container").exists()
    assert "not running" in run(SERVER, "--stop", env=env).stdout


def test_server_reports_a_server_that_dies_at_start(engine):
    env, calls = engine
    result = run(SERVER, "--start", env={**env, "FAKE_DIES": "1"})
    assert result.returncode == 1
    assert "did not start serving" in result.stderr
    assert "cannot open the library" in result.stderr
    assert calls()[-1][:2] == ["rm", "-f"]


def test_server_needs_start_or_stop(engine):
    env, _ = engine
    result = run(SERVER, "--restart", env=env)
    assert result.returncode == 2
    assert "usage" in result.stderr


@pytest.mark.parametrize("script", [ADD_IMAGES, SERVER])
def test_scripts_name_a_missing_engine(engine, tmp_path, script):
    env, _ = engine
    missing = tmp_path / "no-such-engine"
    result = run(
        script,
        "--start" if script == SERVER else str(tmp_path),
        env={**env, "CONTAINER_ENGINE": str(missing)},
    )
    assert result.returncode == 2
    assert f"the container engine '{missing}' is not installed" in result.stderr
