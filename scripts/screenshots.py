"""Screenshots of the footage browser for the docs: docs/img/search.png and docs/img/clip.png.

Builds (once) a catalog from ../shared/media with the real pipeline (``rayflow ingest``),
serves it on a free loopback port and photographs the pages in Debian's headless
Chromium (the same driver setup as tests/web, never a downloaded browser).

    .venv/bin/python scripts/screenshots.py                       # home: $TMPDIR/rayflow-screenshots
    .venv/bin/python scripts/screenshots.py --home /tmp/h --query "blender foundation"
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rayflow.config import load_settings  # noqa: E402
from tests.web import chromium  # noqa: E402
from tests.web.server import serving  # noqa: E402

log = logging.getLogger("screenshots")


def build_catalog(home: Path, media: Path) -> None:
    """Ingest ``media`` into ``home`` unless records are already there."""
    records = home / "output" / "records"
    if records.is_dir() and any(records.glob("*.json")):
        log.info("using the catalog already in %s", home)
        return
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    log.info("ingesting %s into %s (real pipeline; a few minutes on a laptop)", media, home)
    subprocess.run([sys.executable, "-m", "rayflow.cli.main", "ingest", str(media), "--home", str(home), "--json"],
                   env=env, check=False, timeout=3600, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def wait(driver, script: str, timeout_s: float = 60.0, *args):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(script)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "rayflow-screenshots")
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--query", default="the blender foundation presents")
    parser.add_argument("--width", type=int, default=1440)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = chromium.available()
    if reason:
        log.error("cannot take screenshots: %s", reason)
        return 3
    build_catalog(args.home, args.media)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(env={}, home=args.home)
    profile = args.home / "chromium-profile"
    with serving(settings) as url:
        driver = chromium.chromium_driver(profile, width=args.width, height=1000)
        try:
            driver.get(f"{url}/#/search?q={quote(args.query)}")
            wait(driver, "return document.querySelectorAll('.grid .card img').length > 2 && "
                         "[...document.images].every(i => i.complete)")
            time.sleep(0.5)
            driver.save_screenshot(str(args.out / "search.png"))
            log.info("wrote %s", args.out / "search.png")

            href = driver.execute_script("return document.querySelector('.grid .card').getAttribute('href')")
            driver.set_window_size(args.width, 1000)
            driver.get(f"{url}/{href}")
            wait(driver, "const v = document.querySelector('.player video');"
                         "return v && v.played.length > 0 && v.currentTime > 0.3")
            driver.execute_script("document.querySelector('.player video').pause()")
            wait(driver, "const s = document.querySelector('.similar');"
                         "return s && !s.textContent.includes('Looking') && "
                         "[...document.images].every(i => i.complete)")
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(args.width, min(int(height) + 20, 2600))  # the whole page, facts included
            time.sleep(0.5)
            driver.save_screenshot(str(args.out / "clip.png"))
            log.info("wrote %s", args.out / "clip.png")
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
