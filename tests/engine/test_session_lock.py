from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rayflow.engine.session import HomeBusy, home_lock


def test_second_ingest_on_the_same_home_is_refused(tmp_path: Path) -> None:
    with home_lock(tmp_path):
        # Another process trying the same home is refused at once, naming the holder.
        code = (
            "import sys; from pathlib import Path\n"
            "from rayflow.engine.session import HomeBusy, home_lock\n"
            "try:\n"
            f"    with home_lock(Path({str(tmp_path)!r})): sys.exit(0)\n"
            "except HomeBusy as exc:\n"
            "    print(exc); sys.exit(7)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 7
        assert "another rayflow ingest is running" in proc.stdout
        assert "pid" in proc.stdout
    with home_lock(tmp_path):  # released after the run
        pass


def test_lock_is_not_reentrant_within_one_process_either(tmp_path: Path) -> None:
    with home_lock(tmp_path), pytest.raises(HomeBusy), home_lock(tmp_path):
        pass
