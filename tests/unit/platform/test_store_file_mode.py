from __future__ import annotations

import stat
from pathlib import Path

from notip.platform.management.store import Store


def test_database_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "mgmt.db"
    store = Store(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.close()
