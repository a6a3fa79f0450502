"""The plugin manager: built-in implementations plus installed third-party plugins.

Built-ins are registered through the same hooks as third-party plugins, from the
modules in :data:`DEFAULT_PLUGINS`.  Third-party packages are found through the
entry-point group ``leitmotiv``.  The environment variable ``LEITMOTIV_PLUGINS``
narrows which entry points load: a comma-separated list of entry-point names, or
an empty string for none (useful when a broken plugin blocks start-up).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
from dataclasses import dataclass, fields
from typing import Any

import pluggy

from leitmotiv import hookspecs
from leitmotiv.interfaces import KINDS, Implementation

ENTRY_POINT_GROUP = "leitmotiv"
DEFAULT_PLUGINS = ("leitmotiv.default_plugins",)

_HOOK_BY_KIND = {
    "featurizer": "leitmotiv_featurizers",
    "divergence": "leitmotiv_divergences",
    "clusterer": "leitmotiv_clusterers",
}


class UnknownImplementation(LookupError):
    """Raised when a configuration names an implementation no plugin provides."""


@dataclass(frozen=True)
class ImplementationInfo:
    """What ``leitmotiv plugins`` reports about one implementation."""

    kind: str
    name: str
    package: str
    version: str
    params: dict[str, Any]


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    wanted = os.environ.get("LEITMOTIV_PLUGINS")
    if wanted is None:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        return
    names = {name.strip() for name in wanted.split(",") if name.strip()}
    for name in sorted(names):
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The one plugin manager of this process, built on first use."""
    pm = pluggy.PluginManager("leitmotiv")
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    _load_entry_points(pm)
    return pm


def _source_of(pm: pluggy.PluginManager, plugin: object) -> tuple[str, str]:
    """(distribution name, version) of the package that provides ``plugin``."""
    for registered, dist in pm.list_plugin_distinfo():
        if registered is plugin:
            return dist.project_name, dist.version
    return "leitmotiv", importlib.metadata.version("leitmotiv")


def implementations(kind: str) -> dict[str, tuple[type[Implementation], str, str]]:
    """All implementations of ``kind``: name -> (class, package, version).

    Raises
    ------
    ValueError
        If ``kind`` is not one of featurizer, divergence, clusterer.
        Also if two plugins provide the same name for one kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown implementation kind {kind!r}; choose one of {', '.join(KINDS)}")
    pm = get_plugin_manager()
    hook = getattr(pm.hook, _HOOK_BY_KIND[kind])
    found: dict[str, tuple[type[Implementation], str, str]] = {}
    for impl in hook.get_hookimpls():
        package, version = _source_of(pm, impl.plugin)
        for cls in impl.function() or ():
            if cls.kind != kind:
                raise ValueError(f"{cls.__qualname__} from {package} is a {cls.kind}, not a {kind}")
            if cls.name in found and found[cls.name][0] is not cls:
                raise ValueError(
                    f"two plugins provide the {kind} {cls.name!r}: "
                    f"{found[cls.name][1]} and {package}"
                )
            found[cls.name] = (cls, package, version)
    return found


def get_implementation(
    kind: str, name: str, params: dict[str, Any] | None = None
) -> Implementation:
    """Instantiate the ``kind`` implementation called ``name`` with ``params``.

    Raises
    ------
    UnknownImplementation
        If no installed plugin provides it; the message lists the available names.
    ValueError
        If a parameter is unknown or invalid.
    """
    available = implementations(kind)
    if name not in available:
        raise UnknownImplementation(
            f"unknown {kind} {name!r}; available: {', '.join(sorted(available)) or 'none'}"
        )
    return available[name][0].from_params(params)


def list_implementations() -> list[ImplementationInfo]:
    """Every installed implementation, ordered by kind then name."""
    rows = []
    for kind in KINDS:
        for name, (cls, package, version) in sorted(implementations(kind).items()):
            defaults = {f.name: getattr(cls(), f.name) for f in fields(cls)}
            rows.append(ImplementationInfo(kind, name, package, version, defaults))
    return rows
