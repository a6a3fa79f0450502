"""Shared pytest fixtures: where the test data lives and what it is.

The data is not part of the repository: it sits in ``shared/data`` beside the clone
(``<repo>/../shared/data``), both here and in CI, so every path is derived from this
file's location rather than from the working directory.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
PHOTOS_DIR = DATA_DIR / "photos"
PHOTOS_HARD_DIR = DATA_DIR / "photos-hard"
BAD_DIR = DATA_DIR / "bad"


def _require(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"test data folder {path} is missing")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV file with a header, as dicts."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``<repo>/../shared/data``."""
    return _require(DATA_DIR)


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    """The public benchmark: 40 scenes x 4 mild edits, with ``groups.csv``."""
    return _require(PHOTOS_DIR)


@pytest.fixture(scope="session")
def photos_hard_dir() -> Path:
    """The hard benchmark: 40 scenes x 4 hard re-shoots, with ``groups.csv``."""
    return _require(PHOTOS_HARD_DIR)


@pytest.fixture(scope="session")
def bad_dir() -> Path:
    """Broken and unusual files, with ``expected.csv``."""
    return _require(BAD_DIR)


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
