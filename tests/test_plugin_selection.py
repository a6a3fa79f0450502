"""First-party plugins selected by flag and config on a real library; invalidation.

The plugins are separate distributions (``plugins/leitmotiv-*``), installed the way a
user installs a third-party plugin; CI installs all three.
"""

import json
import shutil
import subprocess
import sys

import pytest

SCENES = ("dahlia", "coffee", "misty_pier")


def run(library, *args, config=None):
    cmd = [sys.executable, "-m", "leitmotiv", "--library", str(library)]
    if config is not None:
        cmd += ["--config", str(config)]
    result = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if "--json" in args else result.stdout


@pytest.fixture(scope="module")
def library(tmp_path_factory, photos_dir):
    for module in ("leitmotiv_cauchy_schwarz", "leitmotiv_hdbscan", "leitmotiv_colour"):
        pytest.importorskip(module, reason="install the plugins: pip install plugins/*")
    root = tmp_path_factory.mktemp("plugins")
    photos = root / "photos"
    photos.mkdir()
    for scene in SCENES:
        for k in range(4):
            shutil.copy(photos_dir / f"{scene}_{k}.jpg", photos)
    config = root / "config.toml"
    config.write_text(
        "[params.featurizer.gmm]\nn_samples = 2000\n[params.featurizer.colour]\nn_samples = 2000\n"
    )
    lib = root / "lib"
    run(lib, "add-directory", str(photos), "--json", config=config)
    first = run(lib, "build-index", "--json", config=config)
    assert first["pairs_computed"] == 66
    return lib, config


def scene(path):
    return path.rsplit("/", 1)[-1].rsplit("_", 1)[0]


def test_divergence_plugin_by_flag_computes_its_own_distances(library):
    lib, config = library
    cs = run(lib, "--divergence", "cauchy-schwarz", "build-index", "--json", config=config)
    assert cs["pairs_computed"] == 66  # nothing computed by js is reused
    assert cs["layout"] == "full"  # the plugin's distances get their own map
    query = run(lib, "photos", "--json", config=config)[0]
    near = run(lib, "--divergence", "cauchy-schwarz", "similar", str(query["id"]), "--top", "3",
               "--json", config=config)
    assert {scene(r["path"]) for r in near} == {scene(query["path"])}
    js = run(lib, "similar", str(query["id"]), "--top", "3", "--json", config=config)
    assert [r["distance"] for r in near] != [r["distance"] for r in js]
    # Back to the default: its distances were kept, nothing to recompute.
    again = run(lib, "build-index", "--json", config=config)
    assert again["pairs_computed"] == 0 and again["refit"] == 0
    assert again["layout"] == "kept"


def test_featurizer_plugin_from_config_refits_every_photo_once(library, tmp_path):
    lib, config = library
    chosen = tmp_path / "colour.toml"
    chosen.write_text('featurizer = "colour"\n' + config.read_text())
    report = run(lib, "build-index", "--json", config=chosen)
    assert report["refit"] == 12 and report["pairs_computed"] == 66
    assert report["layout"] == "full"
    assert run(lib, "build-index", "--json", config=chosen)["refit"] == 0
    assert run(lib, "build-index", "--json", config=config)["refit"] == 0


@pytest.mark.parametrize("clusterer", ["hdbscan", "affinity-sparse"])
def test_other_clusterers_group_the_scenes(library, clusterer):
    lib, config = library
    run(lib, "--clusterer", clusterer, "build-index", "--json", config=config)
    clusters = run(lib, "--clusterer", clusterer, "clusters", "--json", config=config)
    grouped = [c for c in clusters if len(c["members"]) > 1]
    assert grouped, clusters
    for cluster in grouped:
        assert len({scene(m["path"]) for m in cluster["members"]}) == 1


@pytest.mark.parametrize(
    "flags",
    [
        ["--featurizer", "colour"],  # 3-D models: once "cannot reshape array of size 171"
        ["--divergence", "cauchy-schwarz"],
        ["--featurizer", "colour", "--divergence", "cauchy-schwarz"],
    ],
)
def test_every_plugin_builds_a_sparse_index(library, flags):
    lib, config = library
    report = run(lib, *flags, "build-index", "--index", "sparse", "--neighbours", "4", "--json",
                 config=config)
    assert report["method"] == "sparse" and report["new_lists"] == 12
    # Pairs a dense index of the same plugins stored earlier are not computed again.
    assert report["pairs_computed"] <= 12 * 4
    query = run(lib, "photos", "--json", config=config)[0]
    near = run(lib, *flags, "similar", str(query["id"]), "--top", "2", "--json", config=config)
    assert len(near) == 2
