"""Where comp keeps what it builds for itself: the cache root (decoded images, file digests,
the demo competitions, TensorFlow's native log)."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from comp.errors import ConfigError


def cache_root(configured: str | None = None) -> Path:
    """Where comp keeps data it builds: paths.cache, $COMP_CACHE, or the first writable of
    ~/.cache/comp, $XDG_CACHE_HOME/comp and a folder in the system's temp dir (with a
    one-line notice: a HOME that cannot be written must not stop comp)."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("COMP_CACHE")
    if env:
        return Path(env).expanduser()
    global _FALLBACK
    if _FALLBACK is not None:
        return _FALLBACK
    candidates = [Path.home() / ".cache" / "comp"]
    if os.environ.get("XDG_CACHE_HOME"):
        candidates.append(Path(os.environ["XDG_CACHE_HOME"]) / "comp")
    candidates.append(Path(tempfile.gettempdir()) / f"comp-cache-{os.getuid()}")
    for place in candidates:
        if _writable(place):
            if place != candidates[0]:
                print(f"notice: {candidates[0]} cannot be written; caching in {place} (set COMP_CACHE to choose)",
                      file=sys.stderr, flush=True)
            _FALLBACK = place
            return place
    raise ConfigError(f"no writable cache folder ({', '.join(map(str, candidates))}); set COMP_CACHE=FOLDER")


_FALLBACK: Path | None = None


def _writable(place: Path) -> bool:
    try:
        place.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(place, os.W_OK | os.X_OK)
