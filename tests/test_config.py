"""Settings precedence: defaults < config file < environment < flags."""

from pathlib import Path

import pytest

from leitmotiv.config import ConfigError, Settings, load_settings, user_data_dir


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_without_any_source(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing"))
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.featurizer == "gmm" and settings.divergence == "js"
    assert settings.clusterer == "affinity"
    assert settings.library == user_data_dir()


def test_precedence_file_env_flags(tmp_path):
    config = write(
        tmp_path / "c.toml",
        'library = "/from/file"\nfeaturizer = "file-f"\ndivergence = "file-d"\n'
        'clusterer = "file-c"\njobs = 3\n',
    )
    env = {"LEITMOTIV_DIVERGENCE": "env-d", "LEITMOTIV_CLUSTERER": "env-c",
           "LEITMOTIV_LIBRARY": "/from/env"}
    settings = load_settings(config, environ=env, overrides={"clusterer": "flag-c"})
    assert settings.featurizer == "file-f"
    assert settings.divergence == "env-d"
    assert settings.clusterer == "flag-c"
    assert settings.library == Path("/from/env")
    assert settings.jobs == 3


def test_config_path_from_environment(tmp_path):
    config = write(tmp_path / "c.toml", 'featurizer = "from-env-file"\n')
    settings = load_settings(environ={"LEITMOTIV_CONFIG": str(config)})
    assert settings.featurizer == "from-env-file"


def test_user_config_file_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "leitmotiv").mkdir()
    write(tmp_path / "leitmotiv" / "config.toml", 'clusterer = "user"\n')
    assert load_settings(environ={}).clusterer == "user"


def test_params_for_the_chosen_implementation(tmp_path):
    config = write(
        tmp_path / "c.toml",
        'featurizer = "gmm"\n[params.featurizer.gmm]\nn_samples = 1234\n'
        "[params.featurizer.other]\nn_samples = 1\n",
    )
    settings = load_settings(config, environ={})
    assert settings.params_for("featurizer") == {"n_samples": 1234}
    assert settings.params_for("divergence") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("featurizer = [", "not valid TOML"),
        ("colour = 1\n", "unknown setting 'colour'"),
        ("jobs = 'many'\n", "jobs must be an integer >= 0, got 'many'"),
        ("jobs = -1\n", "jobs must be an integer >= 0, got -1"),
        ("library = 5\n", "library must be a folder"),
        ("index = 'fast'\n", "index must be 'auto' or 'dense' or 'sparse', got 'fast'"),
        ("dense_limit = 0\n", "dense_limit must be an integer >= 1, got 0"),
        ("neighbours = 2.5\n", "neighbours must be an integer >= 1, got 2.5"),
        ("featurizer = 5\n", "featurizer must be text, got 5"),
        ("[params.divergence]\njs = 3\n", r"\[params\] must be tables"),
        ("params = 3\n", r"\[params\] must be tables"),
    ],
)
def test_bad_config_file_is_explained(tmp_path, text, message):
    config = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(config, environ={})
    assert "c.toml" in str(info.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing.toml"):
        load_settings(tmp_path / "missing.toml", environ={})
