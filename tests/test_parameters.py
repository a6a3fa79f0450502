"""Parameters and settings are checked from their declaration, with one message that
names the key, and the command line refuses them with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pytest

from leitmotiv.interfaces import Clusterer
from leitmotiv.parameters import parameter, parameter_specs
from leitmotiv.plugins import implementations, list_implementations

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Toy(Clusterer):
    name: ClassVar[str] = "toy"

    size: int = parameter(3, low=1)
    rate: float = parameter(0.5, low=0.0, high=1.0, high_open=True)
    mode: str | float = parameter("auto", choices=("auto", "off"))
    limit: int | None = parameter(None, low=0)
    flag: bool = False


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 0}, "clusterer 'toy': parameter size must be an integer >= 1, got 0"),
        ({"size": 2.0}, "parameter size must be an integer >= 1, got 2.0"),
        ({"size": True}, "parameter size must be an integer >= 1, got True"),
        ({"rate": 1.0}, "parameter rate must be a number in [0, 1), got 1.0"),
        ({"rate": "heavy"}, "parameter rate must be a number in [0, 1), got 'heavy'"),
        ({"rate": float("nan")}, "parameter rate must be a number in [0, 1), got nan"),
        ({"mode": "on"}, "parameter mode must be 'auto' or 'off' or a number, got 'on'"),
        ({"limit": -1}, "parameter limit must be an integer >= 0 or none, got -1"),
        ({"flag": 1}, "parameter flag must be true or false, got 1"),
        ({"size": 10**30}, None),
    ],
)
def test_parameters_are_checked_from_their_declaration(params, message):
    if message is None:
        assert Toy.from_params(params).size == 10**30
        return
    with pytest.raises(ValueError) as caught:
        Toy.from_params(params)
    assert message in str(caught.value)


if TYPE_CHECKING:  # a name only type checkers see: the annotation cannot be resolved
    from collections.abc import Sequence as Unresolvable


@dataclass(frozen=True)
class Unresolved(Clusterer):
    name: ClassVar[str] = "unresolved"

    shape: Unresolvable | None = None
    size: int = parameter(3, low=1)


def test_a_class_with_unresolvable_annotations_is_checked_by_its_defaults():
    assert Unresolved.from_params({"shape": (1, 2)}).shape == (1, 2)
    with pytest.raises(ValueError, match="parameter size must be an integer >= 1, got 0"):
        Unresolved.from_params({"size": 0})


def test_a_number_given_as_an_integer_is_stored_as_a_number():
    toy = Toy.from_params({"rate": 0, "mode": 2})
    assert toy.rate == 0.0 and isinstance(toy.rate, float)
    assert toy.key() == Toy(rate=0.0, mode=2.0).key()


@pytest.mark.parametrize(
    ("kind", "name"),
    [(kind, name) for kind in ("featurizer", "divergence", "clusterer")
     for name in sorted(implementations(kind))],
)  # fmt: skip
def test_every_installed_parameter_refuses_a_wrong_type_by_name(kind, name):
    cls = implementations(kind)[name][0]
    cls()  # the defaults are valid
    for spec in parameter_specs(cls):
        with pytest.raises(ValueError) as caught:
            cls.from_params({spec.name: object()})
        assert f"{kind} {name!r}: parameter {spec.name} must be" in str(caught.value)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "leitmotiv", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "HOME": str(cwd)},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('[params.divergence.js]\ncolour_weight = "heavy"\n',
         "divergence 'js': parameter colour_weight must be a number >= 0, got 'heavy'"),
        ("[params.clusterer.affinity]\ndamping = 1\n",
         "clusterer 'affinity': parameter damping must be a number in [0.5, 1), got 1"),
        ("library = 5\n", "library must be a folder (text), got 5"),
        ("jobs = true\n", "jobs must be an integer >= 0, got True"),
    ],
)  # fmt: skip
def test_the_cli_refuses_a_bad_value_with_one_message(tmp_path, config, message):
    (tmp_path / "c.toml").write_text(config, encoding="utf-8")
    result = run("-c", "c.toml", "--library", "lib", "photos", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("must be") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "lib").exists()


def test_the_environment_is_checked_by_its_variable(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "leitmotiv", "photos"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path), "LEITMOTIV_JOBS": "lots"},
        timeout=120,
    )
    assert result.returncode == 2
    assert "environment: LEITMOTIV_JOBS must be an integer >= 0, got 'lots'" in result.stderr


def test_plugins_shows_each_parameter_with_its_range(tmp_path):
    text = run("plugins", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "    colour_weight = 0.6  (a number >= 0)" in text.stdout.splitlines()
    assert "    damping = 0.7  (a number in [0.5, 1))" in text.stdout.splitlines()
    rows = json.loads(run("plugins", "--json", cwd=tmp_path).stdout)
    gmm = next(row for row in rows if row["name"] == "gmm")
    assert gmm["ranges"]["n_samples"] == "an integer >= 1"
    assert gmm["ranges"]["colour_space"] == "'lab' or 'rgb' or 'yuv'"
    assert {row.name: row.ranges for row in list_implementations()}["js"] == next(
        row["ranges"] for row in rows if row["name"] == "js"
    )
