"""What every part of one library shares: its folder, its store and the chosen
implementations, with the ids under which the store records them.

A :class:`Context` is made once per opened :class:`~leitmotiv.library.Library` and
handed to the modules that do the work (:mod:`leitmotiv.ingest`, :mod:`leitmotiv.index`,
:mod:`leitmotiv.queries`, :mod:`leitmotiv.render_cache`), so none of them needs the
façade.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peewee as pw

from leitmotiv import store
from leitmotiv.config import Settings
from leitmotiv.interfaces import Clusterer, Divergence, Featurizer


@dataclasses.dataclass
class Context:
    """One library's settings, folder, database and implementations.

    Attributes
    ----------
    settings : Settings
    folder : Path
        The library folder (database, ``cache/`` of rendered images).
    db : peewee.Database
        The library's database (see :mod:`leitmotiv.store`).
    featurizer, divergence, clusterer : Implementation
        The configured implementations, built by the plugin manager.
    """

    settings: Settings
    folder: Path
    db: pw.Database
    featurizer: Featurizer
    divergence: Divergence
    clusterer: Clusterer
    _keys: tuple[int, int, int] | None = dataclasses.field(default=None, repr=False)
    _lookups: dict[tuple, store.Lookup] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, settings: Settings, db: pw.Database) -> Context:
        """The context of ``settings`` over an opened database.

        Raises
        ------
        leitmotiv.plugins.UnknownImplementation, ValueError
            If the settings name an unknown implementation or parameter.
        """
        from leitmotiv.plugins import get_implementation

        return cls(
            settings=settings,
            folder=Path(settings.library),
            db=db,
            featurizer=get_implementation(
                "featurizer", settings.featurizer, settings.params_for("featurizer")
            ),
            divergence=get_implementation(
                "divergence", settings.divergence, settings.params_for("divergence")
            ),
            clusterer=get_implementation(
                "clusterer", settings.clusterer, settings.params_for("clusterer")
            ),
        )

    def key_ids(self, create: bool = False) -> tuple[int, int, int]:
        """Ids of the (featurizer, divergence, clusterer) keys.

        Parameters
        ----------
        create : bool
            Store the keys that are missing (commands that write results).  Without
            it (reading) nothing is written: a key never stored has the id
            :data:`leitmotiv.store.NO_KEY`, which matches nothing, since nothing was
            computed with it yet.

        The ids never change for this context (the implementations are fixed), so
        once all three exist they are looked up no more.
        """
        if self._keys is None:
            keys = (self.featurizer.key(), self.divergence.key(), self.clusterer.key())
            with store.bound(self.db):
                if create:
                    with self.db.atomic():
                        ids = tuple(store.key_id(key) for key in keys)
                else:
                    ids = tuple(store.find_key_id(key) for key in keys)
            if store.NO_KEY in ids:
                return ids  # looked up again next time: another process may store them
            self._keys = ids
        return self._keys

    def lookup(self, name: str, build: Callable[[], pw.Query]) -> store.Lookup:
        """The one-row query ``name`` compiled once for this library and its current key
        ids (:class:`leitmotiv.store.Lookup`); ``build()`` makes it the first time."""
        cache_key = (name, self.key_ids())
        found = self._lookups.get(cache_key)
        if found is None:
            found = self._lookups[cache_key] = store.Lookup(self.db, build())
        return found

    def featurizer_spec(self) -> tuple[str, dict[str, Any]]:
        """The featurizer as (name, parameters), the form worker processes rebuild it from."""
        return self.featurizer.name, dict(self.featurizer.params)

    def divergence_spec(self) -> tuple[str, dict[str, Any]]:
        """The divergence as (name, parameters), the form Dask workers rebuild it from."""
        return self.divergence.name, dict(self.divergence.params)
