"""Shared pytest fixtures: where the test data lives and what it is; the skip budget.

The data is part of the repository: a compact corpus in ``tests/data`` (16 real scenes
x 4 versions at 320 px, a few hard and monochrome re-shoots, the bad-input files),
made from the shared photo sets by ``tests/data/make_corpus.py`` and described in
``tests/data/README.md``.  Every path is derived from this file's location rather than
from the working directory.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import skip_budget

DATA_DIR = Path(__file__).resolve().parent / "data"
PHOTOS_DIR = DATA_DIR / "photos"
PHOTOS_HARD_DIR = DATA_DIR / "photos-hard"
PHOTOS_MONO_DIR = DATA_DIR / "photos-mono"
BAD_DIR = DATA_DIR / "bad"


def pytest_configure(config: pytest.Config) -> None:
    skip_budget.register(config)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV file with a header, as dicts."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``tests/data``, the compact test corpus."""
    return DATA_DIR


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    """16 real scenes x 4 mild edits at 320 px, with ``groups.csv``."""
    return PHOTOS_DIR


@pytest.fixture(scope="session")
def photos_hard_dir() -> Path:
    """6 of those scenes x 4 hard re-shoots, with ``groups.csv``."""
    return PHOTOS_HARD_DIR


@pytest.fixture(scope="session")
def photos_mono_dir() -> Path:
    """6 of those scenes: colour original, black and white, sepia, high-contrast
    black and white cropped (``_m0`` to ``_m3``), with ``groups.csv``."""
    return PHOTOS_MONO_DIR


@pytest.fixture(scope="session")
def bad_dir() -> Path:
    """Broken and unusual files, with ``expected.csv``."""
    return BAD_DIR


@pytest.fixture(scope="session")
def groups_rows(photos_dir: Path) -> list[dict[str, str]]:
    """All rows of ``photos/groups.csv`` (file, group, source, transform, taken,
    orientation)."""
    return read_csv(photos_dir / "groups.csv")


@pytest.fixture(scope="session")
def groups(groups_rows: list[dict[str, str]]) -> dict[str, str]:
    """``{file name: scene group}`` of ``photos/groups.csv``."""
    return {row["file"]: row["group"] for row in groups_rows}


@pytest.fixture(scope="session")
def hard_groups(photos_hard_dir: Path) -> dict[str, str]:
    """``{file name: scene group}`` of ``photos-hard/groups.csv``."""
    return {row["file"]: row["group"] for row in read_csv(photos_hard_dir / "groups.csv")}


@pytest.fixture(scope="session")
def mono_groups(photos_mono_dir: Path) -> dict[str, str]:
    """``{file name: scene group}`` of ``photos-mono/groups.csv``."""
    return {row["file"]: row["group"] for row in read_csv(photos_mono_dir / "groups.csv")}


@pytest.fixture
def empty_postgres(tmp_path: Path) -> str:
    """URL of the test PostgreSQL database (``LEITMOTIV_TEST_POSTGRES_URL``), its
    leitmotiv tables dropped so each test starts from an empty schema."""
    import os

    from leitmotiv import store

    url = os.environ.get("LEITMOTIV_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set LEITMOTIV_TEST_POSTGRES_URL to test against PostgreSQL")
    db = store.connect(url, tmp_path)
    with store.bound(db):
        db.drop_tables(store.MODELS, safe=True, cascade=True)
    db.close()
    return url
