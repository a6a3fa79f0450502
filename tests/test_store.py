"""Tests of the database schema: creation, migration, constraints, transactions."""

from __future__ import annotations

import peewee as pw
import pytest

from leitmotiv import store


@pytest.fixture
def db(tmp_path):
    database = store.open_database(None, tmp_path)
    with store.bound(database):
        yield database
    database.close()


def _photo(path="/photos/a.jpg", sha="0" * 64):
    return store.Photo.create(
        path=path, sha256=sha, size=1, mtime=0.0, width=4, height=3, taken_source="mtime"
    )


def test_schema_is_created_in_wal_mode(db, tmp_path):
    assert (tmp_path / store.SQLITE_NAME).is_file()
    tables = set(db.get_tables())
    assert {m._meta.table_name for m in store.MODELS} <= tables
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migration_version_is_recorded_once(db, tmp_path):
    assert store.schema_version(db) == store.SCHEMA_VERSION
    # Opening again runs no migration and keeps exactly one version row.
    again = store.open_database(None, tmp_path)
    assert store.schema_version(again) == store.SCHEMA_VERSION
    assert store.SchemaVersion.select().count() == 1
    again.close()


def test_a_version_1_library_is_migrated_to_the_current_schema(tmp_path):
    old = store.connect(None, tmp_path)
    with old.bind_ctx(store.MODELS):
        old.create_tables([store.SchemaVersion])
        store.MIGRATIONS[0][1](old)  # the schema as version 1 wrote it:
        old.execute_sql("ALTER TABLE cluster_run DROP COLUMN base_photos")
        store.SchemaVersion.create(version=1)
        _photo()
    assert "neighbours" not in old.get_tables()
    old.close()
    db = store.open_database(None, tmp_path)
    with store.bound(db):
        assert store.schema_version(db) == store.SCHEMA_VERSION == 8
        assert "neighbours" in db.get_tables()
        assert "base_photos" in {c.name for c in db.get_columns("cluster_run")}
        assert store.Photo.select().count() == 1  # nothing lost
    db.close()


def test_version_3_candidate_lists_are_dropped_as_a_stale_cache(tmp_path):
    old = store.connect(None, tmp_path)
    with old.bind_ctx(store.MODELS):
        old.create_tables([store.SchemaVersion])
        for _, step in store.MIGRATIONS[:3]:
            step(old)
        # Version 3 kept each photo's wide embedding list, and no sample sets.
        old.execute_sql("ALTER TABLE neighbours DROP COLUMN samples")
        old.execute_sql("ALTER TABLE neighbours ADD COLUMN wide BLOB NOT NULL DEFAULT x''")
        store.SchemaVersion.create(version=3)
        photo = _photo()
        key = store.ImplementationKey.create(key="gmm")
        old.execute_sql(
            "INSERT INTO neighbours (photo_id, featurizer_id, search_id, embedding, "
            "candidates, wide) VALUES (?, ?, ?, x'00', x'00', x'00')",
            (photo.id, key.id, key.id),
        )
    old.close()
    db = store.open_database(None, tmp_path)
    with store.bound(db):
        assert store.schema_version(db) == store.SCHEMA_VERSION
        columns = {c.name for c in db.get_columns("neighbours")}
        assert "samples" in columns and "wide" not in columns
        assert store.Neighbours.select().count() == 0  # rebuilt by the next build-index
        assert store.Photo.select().count() == 1
    db.close()


def test_a_newer_schema_is_refused(db, tmp_path):
    store.SchemaVersion.update(version=store.SCHEMA_VERSION + 1).execute()
    with pytest.raises(RuntimeError, match="newer"):
        store.open_database(None, tmp_path)


def test_photo_path_is_unique(db):
    _photo()
    with pytest.raises(pw.IntegrityError), db.atomic():
        _photo()


def test_one_model_per_photo_and_featurizer(db):
    photo = _photo()
    key = store.key_id("featurizer:gmm:{}")
    fields = dict(mixture=b"x", n_components=1, lower_bound=None, n_iter=1, seconds=0.0)
    store.Model.create(photo=photo, featurizer=key, **fields)
    store.Model.create(photo=photo, featurizer=store.key_id("featurizer:other:{}"), **fields)
    with pytest.raises(pw.IntegrityError), db.atomic():
        store.Model.create(photo=photo, featurizer=key, **fields)


def test_distance_is_unique_and_ordered(db):
    a, b = _photo("/a.jpg"), _photo("/b.jpg")
    f, d = store.key_id("f"), store.key_id("d")
    store.Distance.create(photo_a=a, photo_b=b, featurizer=f, divergence=d, value=0.5)
    with pytest.raises(pw.IntegrityError), db.atomic():
        store.Distance.create(photo_a=a, photo_b=b, featurizer=f, divergence=d, value=0.7)
    with pytest.raises(pw.IntegrityError), db.atomic():
        store.Distance.create(photo_a=b, photo_b=a, featurizer=f, divergence=d, value=0.5)
    # Another divergence of the same pair is a different row.
    store.Distance.create(photo_a=a, photo_b=b, featurizer=f, divergence=store.key_id("e"), value=1)
    assert store.Distance.select().count() == 2


def test_key_ids_are_stable(db):
    assert store.key_id("a") == store.key_id("a") != store.key_id("b")


def test_deleting_a_photo_cascades(db):
    a, b = _photo("/a.jpg"), _photo("/b.jpg")
    f, d = store.key_id("f"), store.key_id("d")
    store.Model.create(photo=a, featurizer=f, mixture=b"x", n_components=1, n_iter=1, seconds=0.0)
    store.Distance.create(photo_a=a, photo_b=b, featurizer=f, divergence=d, value=0.5)
    a.delete_instance()
    assert store.Model.select().count() == 0
    assert store.Distance.select().count() == 0


def test_a_failed_transaction_leaves_nothing(db):
    with pytest.raises(RuntimeError), db.atomic():
        _photo("/a.jpg")
        store.Failure.create(path="/b.jpg", reason="test")
        raise RuntimeError("interrupted")
    assert store.Photo.select().count() == 0
    assert store.Failure.select().count() == 0


def test_two_databases_in_one_process(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = store.open_database(None, tmp_path / "one")
    two = store.open_database(None, tmp_path / "two")
    with store.bound(one):
        _photo("/one.jpg")
    with store.bound(two):
        assert store.Photo.select().count() == 0
    with store.bound(one):
        assert store.Photo.select().count() == 1
    one.close()
    two.close()


def test_a_binding_belongs_to_its_thread(tmp_path):
    # Each thread binds its own database and queries it while the other one is bound:
    # with a process-wide binding the first thread would count the second's photos.
    import threading

    dbs = []
    for name, photos in (("one", 1), ("two", 3)):
        (tmp_path / name).mkdir()
        db = store.open_database(None, tmp_path / name)
        with store.bound(db):
            for i in range(photos):
                _photo(f"/{name}/{i}.jpg")
        dbs.append(db)
    both_bound = threading.Barrier(2)
    counted = {}

    def count(db, name):
        with store.bound(db):
            both_bound.wait(timeout=10)
            counted[name] = store.Photo.select().count()
            both_bound.wait(timeout=10)  # neither leaves before both have counted
        counted[name + " after"] = store.database_proxy.obj

    pairs = zip(dbs, "ab", strict=True)
    threads = [threading.Thread(target=count, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counted == {"a": 1, "b": 3, "a after": None, "b after": None}
    for db in dbs:
        db.close()


def test_reading_an_old_schema_says_to_write_first_and_changes_nothing(tmp_path):
    old = store.connect(None, tmp_path)
    with store.bound(old):
        old.create_tables([store.SchemaVersion])
        store.MIGRATIONS[0][1](old)
        store.SchemaVersion.create(version=1)
    old.close()
    before = (tmp_path / store.SQLITE_NAME).read_bytes()
    with pytest.raises(RuntimeError, match=r"schema version 1\b.*run a command that writes"):
        store.open_read_only(None, tmp_path)
    assert (tmp_path / store.SQLITE_NAME).read_bytes() == before
    db = store.open_database(None, tmp_path)  # a command that writes migrates it
    db.close()
    reader = store.open_read_only(None, tmp_path)
    with store.bound(reader), pytest.raises(pw.OperationalError, match="readonly"):
        _photo()
    reader.close()


def test_a_folder_that_cannot_be_written_is_read_as_immutable(tmp_path, monkeypatch):
    # As a user who may not write the folder, SQLite cannot make the WAL index and
    # refuses mode=ro alone (root, running CI, may always write: so simulated here).
    db = store.open_database(None, tmp_path)
    with store.bound(db):
        _photo()
    db.close()
    connect = store.connect

    def refused_without_immutable(url, folder, read_only=False, immutable=False):
        if read_only and not immutable:
            raise pw.OperationalError("attempt to write a readonly database")
        return connect(url, folder, read_only=read_only, immutable=immutable)

    monkeypatch.setattr(store, "connect", refused_without_immutable)
    reader = store.open_read_only(None, tmp_path)
    assert reader.database.endswith("?mode=ro&immutable=1")
    with store.bound(reader):
        assert store.Photo.select().count() == 1
    reader.close()


def test_a_compiled_lookup_answers_each_value_as_the_query_would(db):
    photos = [_photo(f"/p{i}.jpg", sha=f"{i:064d}") for i in range(3)]
    lookup = store.Lookup(
        db, store.Photo.select(store.Photo.path).where(store.Photo.id == store.LOOKUP_SLOT)
    )
    for photo in photos:
        assert lookup.rows(photo.id) == [(photo.path,)]
    assert lookup.rows(max(p.id for p in photos) + 1) == []
    # The slot is the value to fill, so it must be there, and only once.
    with pytest.raises(ValueError, match="exactly one"):
        store.Lookup(db, store.Photo.select().where(store.Photo.id == 1))
    both = (store.Photo.id == store.LOOKUP_SLOT) | (store.Photo.size == store.LOOKUP_SLOT)
    with pytest.raises(ValueError, match="exactly one"):
        store.Lookup(db, store.Photo.select().where(both))
