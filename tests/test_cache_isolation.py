"""A test run writes nothing into the user's ``~/.cache/fedsim`` (tests/conftest.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fedsim_app.assets import cache_dir


def test_session_cache_is_a_temporary_folder():
    cache = cache_dir().resolve()
    assert Path(tempfile.gettempdir()).resolve() in cache.parents
    assert cache.name.startswith("fedsim-test-cache-")
    home_cache = (Path.home() / ".cache" / "fedsim").resolve()
    assert cache != home_cache and home_cache not in cache.parents
