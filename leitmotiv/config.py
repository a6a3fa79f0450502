"""Settings: defaults < config file < environment < command-line flags.

The config file is TOML, by default ``<user config dir>/leitmotiv/config.toml``
(or the path in ``LEITMOTIV_CONFIG``, or ``-c/--config``)::

    library = "~/Pictures/.leitmotiv"     # folder holding the database and caches
    database = "postgresql://me@db/photos" # optional; default: SQLite in the library
    featurizer = "gmm"
    divergence = "js"
    clusterer = "affinity"
    jobs = 2                               # 0 or absent: all cores
    index = "auto"                         # "dense", "sparse" or "auto" (by dense_limit)
    dense_limit = 2000                     # auto: all pairs up to this many photos
    neighbours = 50                        # sparse index: exact distances per photo

    [params.featurizer.gmm]                # parameters of one implementation
    n_samples = 3000

Environment variables: ``LEITMOTIV_LIBRARY``, ``LEITMOTIV_DATABASE``,
``LEITMOTIV_FEATURIZER``, ``LEITMOTIV_DIVERGENCE``, ``LEITMOTIV_CLUSTERER``,
``LEITMOTIV_JOBS``, ``LEITMOTIV_INDEX``, ``LEITMOTIV_DENSE_LIMIT``,
``LEITMOTIV_NEIGHBOURS``.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from leitmotiv.parameters import ParameterSpec, parameter, parameter_specs

DEFAULT_IMPLEMENTATIONS = {"featurizer": "gmm", "divergence": "js", "clusterer": "affinity"}
INDEX_METHODS = ("auto", "dense", "sparse")

#: A database URL (``postgresql://...``, ``sqlite:///...``) rather than a folder.
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_database_url(text: str) -> bool:
    """Whether ``text`` is a database URL (``postgresql://...``) rather than a folder."""
    return bool(_URL_RE.match(text))


class ConfigError(ValueError):
    """A configuration file or value that cannot be used; the message says why."""


def user_data_dir() -> Path:
    """The platform's per-user data folder for leitmotiv."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "leitmotiv"


def user_config_path() -> Path:
    """Where the config file is looked for when none is named."""
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "leitmotiv" / "config.toml"


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one run; its fields are the table of every setting, with
    type, default and range (:func:`leitmotiv.parameters.parameter`), from which
    every value is checked.

    Attributes
    ----------
    library : Path
        Folder of the library (database, thumbnails, caches).  A database URL given
        here is taken as ``database``.
    database : str or None
        A peewee database URL; None means the SQLite file in ``library``.
    featurizer, divergence, clusterer : str
        Names of the chosen implementations.
    jobs : int
        Worker processes; 0 means all cores.
    index : str
        ``"dense"`` (every pair of photos gets a distance), ``"sparse"`` (each photo
        and its ``neighbours`` candidates only, see :mod:`leitmotiv.sparse_index`) or
        ``"auto"``: dense up to ``dense_limit`` photos.
    dense_limit : int
        Photos up to which ``"auto"`` indexes densely.
    neighbours : int
        Candidates per photo of the sparse index.
    params : dict
        ``params[kind][name]`` is a dict of parameters for that implementation.
    """

    library: Path = field(default_factory=user_data_dir)
    database: str | None = None
    featurizer: str = DEFAULT_IMPLEMENTATIONS["featurizer"]
    divergence: str = DEFAULT_IMPLEMENTATIONS["divergence"]
    clusterer: str = DEFAULT_IMPLEMENTATIONS["clusterer"]
    jobs: int = parameter(0, low=0)
    index: str = parameter("auto", choices=INDEX_METHODS)
    dense_limit: int = parameter(2000, low=1)
    neighbours: int = parameter(50, low=1)
    params: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def params_for(self, kind: str) -> dict[str, Any]:
        """Parameters configured for the chosen implementation of ``kind``."""
        return dict(self.params.get(kind, {}).get(getattr(self, kind), {}))


#: Every setting by name, as declared by the fields of :class:`Settings`.
SETTINGS: dict[str, ParameterSpec] = {spec.name: spec for spec in parameter_specs(Settings)}


def _setting_value(spec: ParameterSpec, value: Any, origin: str, key: str) -> Any:
    """One setting's value, checked against its declaration (``key`` as the user
    wrote it: the file's key or the environment variable)."""
    if origin == "environment" and int in spec.types and isinstance(value, str):
        try:
            value = int(value.strip())  # the environment holds text only
        except ValueError:
            pass  # the check below explains what is expected
    if spec.name == "library":
        if not isinstance(value, str | Path):
            raise ConfigError(f"{origin}: {key} must be a folder (text), got {value!r}")
        return Path(os.path.expanduser(str(value))).resolve()
    if spec.name == "params":
        if not isinstance(value, Mapping) or not all(
            isinstance(v, Mapping) and all(isinstance(p, Mapping) for p in v.values())
            for v in value.values()
        ):
            raise ConfigError(f"{origin}: [params] must be tables [params.<kind>.<name>]")
        return {k: {n: dict(p) for n, p in v.items()} for k, v in value.items()}
    try:
        return spec.check(origin, value, key=key)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _coerce(
    values: Mapping[str, Any], origin: str, keys: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Check ``{setting: value}`` from one source against :data:`SETTINGS`.

    ``keys`` names each setting as the source spells it (environment variables);
    a database URL given as ``library`` becomes the ``database`` setting.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        key = (keys or {}).get(name, name)
        if name not in SETTINGS:
            raise ConfigError(f"{origin}: unknown setting {key!r}; known: {', '.join(SETTINGS)}")
        if name == "library" and isinstance(value, str) and is_database_url(value):
            name = "database"  # never a folder named after a URL (and its password)
        out[name] = _setting_value(SETTINGS[name], value, origin, key)
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and validate a TOML config file.

    Raises
    ------
    ConfigError
        If the file cannot be read or parsed, or holds an unknown setting.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return _coerce(data, str(path))


def load_settings(
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve the settings: defaults < config file < environment < ``overrides``.

    Parameters
    ----------
    config_path : Path, optional
        Config file named on the command line; it must exist.  Without it,
        ``LEITMOTIV_CONFIG`` or the user config path is read if present.
    environ : mapping, optional
        Environment (``os.environ`` by default).
    overrides : mapping, optional
        Values from command-line flags; None values are ignored.
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    if config_path is None and environ.get("LEITMOTIV_CONFIG"):
        config_path = Path(environ["LEITMOTIV_CONFIG"])
    if config_path is not None:
        merged.update(read_config_file(Path(config_path)))
    elif user_config_path().is_file():
        merged.update(read_config_file(user_config_path()))
    variables = {name: f"LEITMOTIV_{name.upper()}" for name in SETTINGS if name != "params"}
    env_values = {name: environ.get(variable) for name, variable in variables.items()}
    merged.update(_coerce(env_values, "environment", variables))
    merged.update(_coerce(dict(overrides or {}), "command line"))
    return replace(Settings(), **merged)
