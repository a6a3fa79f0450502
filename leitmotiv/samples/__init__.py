"""Real sample photos for ``leitmotiv demo`` (credits in CREDITS.md beside them)."""

from importlib.resources import files
from pathlib import Path


def sample_photos() -> list[Path]:
    """Paths of the shipped sample photos, sorted by name."""
    folder = files(__name__)
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jpg"))
