"""The plugin manager: built-ins through the hooks, test plugins, entry points."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leitmotiv import plugins
from leitmotiv.interfaces import Clusterer

TEST_PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def fresh_manager(monkeypatch):
    """A plugin manager rebuilt for the test and forgotten afterwards."""
    plugins.get_plugin_manager.cache_clear()
    yield plugins.get_plugin_manager
    plugins.get_plugin_manager.cache_clear()


@pytest.fixture
def installed_testplugin(tmp_path):
    """A distribution that declares the test plugin in the 'leitmotiv' entry-point group.

    Built as a real ``*.dist-info`` folder on ``sys.path``, exactly what pip would leave.
    """
    site = tmp_path / "site"
    dist = site / "leitmotiv_testplugin-1.2.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: leitmotiv-testplugin\nVersion: 1.2.3\n"
    )
    (dist / "entry_points.txt").write_text("[leitmotiv]\nalone = leitmotiv_testplugin\n")
    (site / "leitmotiv_testplugin.py").write_text(
        (TEST_PLUGINS / "leitmotiv_testplugin.py").read_text()
    )
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    sys.modules.pop("leitmotiv_testplugin", None)


def test_builtins_are_registered_through_the_hooks(fresh_manager):
    for kind, name in [("featurizer", "gmm"), ("divergence", "js"), ("clusterer", "affinity")]:
        cls, package, version = plugins.implementations(kind)[name]
        assert cls.kind == kind and cls.name == name
        assert package == "leitmotiv" and version


def test_the_old_import_path_of_the_interfaces_still_works():
    # Third-party plugins import leitmotiv.implementation (the test plugin does too).
    from leitmotiv import implementation, interfaces

    for name in implementation.__all__:
        assert getattr(implementation, name) is getattr(interfaces, name)
    assert set(implementation.__all__) == {
        "KINDS", "Clusterer", "Clustering", "Divergence", "Featurizer", "Implementation",
        "SparseIndexUnavailable",
    }


def test_registered_test_plugin_is_selectable(fresh_manager):
    sys.path.insert(0, str(TEST_PLUGINS))
    try:
        import leitmotiv_testplugin

        fresh_manager().register(leitmotiv_testplugin)
        impl = plugins.get_implementation("clusterer", "alone")
        assert isinstance(impl, Clusterer)
        clustering = impl.cluster([[0.0, 1.0], [1.0, 0.0]])
        assert list(clustering.labels) == [0, 1]
    finally:
        sys.path.remove(str(TEST_PLUGINS))


def test_entry_point_distribution_is_found(fresh_manager, installed_testplugin):
    found = plugins.implementations("clusterer")
    assert "alone" in found
    _, package, version = found["alone"]
    assert (package, version) == ("leitmotiv-testplugin", "1.2.3")


def test_environment_variable_narrows_entry_points(
    fresh_manager, installed_testplugin, monkeypatch
):
    monkeypatch.setenv("LEITMOTIV_PLUGINS", "")
    assert "alone" not in plugins.implementations("clusterer")


def test_unknown_name_lists_the_available_ones(fresh_manager):
    with pytest.raises(plugins.UnknownImplementation, match=r"available: .*affinity"):
        plugins.get_implementation("clusterer", "no-such-clusterer")


def test_unknown_parameter_is_refused(fresh_manager):
    with pytest.raises(ValueError, match=r"unknown parameter.*bogus"):
        plugins.get_implementation("clusterer", "affinity", {"bogus": 1})


def test_implementation_key_changes_with_parameters(fresh_manager):
    a = plugins.get_implementation("clusterer", "affinity")
    b = plugins.get_implementation("clusterer", "affinity", {"damping": 0.9})
    assert a.key() != b.key()
    assert a.key() == plugins.get_implementation("clusterer", "affinity").key()


def test_cli_lists_entry_point_plugin_and_accepts_it_by_flag(installed_testplugin, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(installed_testplugin))
    env.pop("LEITMOTIV_PLUGINS", None)
    listed = subprocess.run(
        [sys.executable, "-m", "leitmotiv", "plugins", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )
    rows = json.loads(listed.stdout)
    assert {"kind": "clusterer", "name": "alone", "package": "leitmotiv-testplugin",
            "version": "1.2.3", "params": {}, "ranges": {}} in rows
    kinds = {row["kind"] for row in rows}
    assert kinds == {"featurizer", "divergence", "clusterer"}
    chosen = subprocess.run(
        [sys.executable, "-m", "leitmotiv", "--library", str(tmp_path / "lib"),
         "--clusterer", "alone", "photos", "--json"],
        capture_output=True, text=True, env=env,
    )
    assert chosen.returncode == 0, chosen.stderr


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--divergence", "mean-gap"], "'mean-gap' has no sparse path"),
        (["--clusterer", "alone"], "'alone' needs every pairwise distance"),
    ],
)
def test_cli_refuses_a_plugin_without_a_sparse_path_as_a_usage_error(
    installed_testplugin, tmp_path, flags, reason
):
    env = dict(os.environ, PYTHONPATH=str(installed_testplugin))
    env.pop("LEITMOTIV_PLUGINS", None)
    library = tmp_path / "lib"
    refused = subprocess.run(
        [sys.executable, "-m", "leitmotiv", "--library", str(library), *flags,
         "build-index", "--index", "sparse"],
        capture_output=True, text=True, env=env,
    )
    assert refused.returncode == 2, refused.stderr
    assert reason in refused.stderr
    assert "Traceback" not in refused.stderr
