"""Debian's headless Chromium driven by selenium, for the web UI tests and docs screenshots.

Never a downloaded browser: the driver path is given explicitly (selenium-manager
then has nothing to look up) and ``SE_OFFLINE=true`` forbids it any network access.
Flags: ``--headless=new``, ``--no-sandbox`` (we run as root), no GPU, no /dev/shm
(small in containers), a private profile dir, autoplay without a gesture (the clip
page starts the proxy at the matched moment).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def available() -> str | None:
    """Why Chromium cannot run here (None when it can)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        return f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (scripts/setup.sh does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (dev extra)"
    return None


def chromium_driver(profile_dir: Path, *, width: int = 1400, height: int = 900) -> Any:
    """A headless Chromium WebDriver with a private profile under ``profile_dir``."""
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never download a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
                 "--autoplay-policy=no-user-gesture-required", "--no-first-run", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    profile_dir.mkdir(parents=True, exist_ok=True)
    service = Service(executable_path=shutil.which(CHROMEDRIVER) or CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=options)
