"""The studio's page ships in the wheel, and it fetches nothing from anywhere else."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from account_lifecycle.studio import server

ROOT = Path(__file__).resolve().parents[2]
ASSETS = sorted(name for name, _ in server._ASSETS.values())


@pytest.mark.slow
def test_the_built_wheel_carries_every_asset_the_server_serves(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in ASSETS if f"account_lifecycle/studio/assets/{name}" not in names]
    assert missing == []
    assert ASSETS == ["index.html", "studio.css", "studio.js"]


@pytest.mark.parametrize("name", ASSETS)
def test_the_page_names_no_other_host(name: str) -> None:
    """No CDN, no font service, no analytics: no absolute URL but the SVG namespace."""
    text = (ROOT / "account_lifecycle" / "studio" / "assets" / name).read_text(encoding="utf-8")
    urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.\-]+\.[A-Za-z]{2,}", text))
    assert urls <= {"http://www.w3.org"}
