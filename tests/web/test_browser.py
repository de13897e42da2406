"""The page in a real headless Chromium (Debian's, via selenium): search, play from the
moment, and an HTML-looking file name rendered as text."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web import chromium
from tests.web.conftest import XSS_NAME, WebHome
from tests.web.server import serving

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(chromium.available() is not None, reason=str(chromium.available()))]

WAIT_S = 60.0


@pytest.fixture(scope="module")
def site(web_home: WebHome) -> Iterator[str]:
    with serving(web_home.settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = chromium.chromium_driver(Path(tmp_path_factory.mktemp("chromium-profile")))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, predicate: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout_s, poll_frequency=0.1)
    return wait.until(predicate, message=f"timed out waiting for {what}")


def no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert  # noqa: B018 - raises when there is none
    except NoAlertPresentException:
        return True
    return False


def test_search_with_the_keyboard_shows_the_right_clip_first(site: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(site + "/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".card"), "the clip grid")
    browser.find_element(By.TAG_NAME, "body").send_keys("/")  # "/" focuses the search box
    box = browser.switch_to.active_element
    assert box.get_attribute("id") == "q"
    box.send_keys("ferry leaving the harbour", Keys.ENTER)
    first = wait_for(browser, lambda d: (d.find_elements(By.CSS_SELECTOR, ".grid .card") if "#/search" in d.current_url
                                         else None), "search results")[0]
    assert first.find_element(By.CSS_SELECTOR, ".name").text == "harbour.mp4"
    marks = [m.text.lower() for m in first.find_elements(By.CSS_SELECTOR, "mark")]
    assert "ferry" in marks or "harbour" in marks, marks
    # Arrow down from the box lands on the first card; Enter opens it.
    browser.find_element(By.ID, "q").send_keys(Keys.ARROW_DOWN)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("data-clip") == first.get_attribute("data-clip")
    focused.send_keys(Keys.ENTER)
    title = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".clip-name"), "the clip page")[0]
    assert title.text == "harbour.mp4"


def test_moment_hit_opens_the_clip_playing_from_the_moment(site: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(site + "/#/search?q=" + "counting%20votes%20at%20city%20hall" + "&in=moments")
    card = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".grid .card"), "moment results")[0]
    assert card.find_element(By.CSS_SELECTOR, ".name").text == "election.mp4"
    href = card.get_attribute("href")
    start = float(href.split("?t=")[1])
    card.click()
    video = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".player video"), "the video element")[0]
    # It must really play (the clock advances over decoded frames), and from the moment:
    # the first played range starts there, not at 0.
    state = wait_for(browser, lambda d: d.execute_script(
        "const v = arguments[0];"
        "if (v.paused || v.played.length === 0 || v.played.end(0) - v.played.start(0) < 0.1) return null;"
        "return {t: v.currentTime, from: v.played.start(0), ready: v.readyState};", video),
        "the proxy to play")
    assert start > 1.0  # the phrase starts 2 s in, so playing from 0 could not pass
    assert abs(state["from"] - start) <= 1.0, (state, start)
    assert abs(state["t"] - start) <= 1.0, (state, start)
    assert state["ready"] >= 2
    assert browser.find_element(By.CSS_SELECTOR, ".clip-name").text == "election.mp4"
    transcript = browser.find_element(By.CSS_SELECTOR, ".transcript").text.lower()
    assert "votes" in transcript
    facts = {f.find_element(By.TAG_NAME, "h3").text.lower(): f.text for f in
             browser.find_elements(By.CSS_SELECTOR, ".facts")}
    assert {"file", "video", "color / hdr", "audio track 1", "exposure"} <= set(facts), list(facts)
    assert "h264" in facts["video"] and "aac" in facts["audio track 1"]
    assert "[object" not in browser.find_element(By.TAG_NAME, "body").text


def test_html_in_a_file_name_is_shown_as_text(site: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(site + "/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".card"), "the clip grid")
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".card .name")]
    assert XSS_NAME in names, names
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert no_alert(browser)
    card = next(e for e in browser.find_elements(By.CSS_SELECTOR, ".card")
                if e.find_element(By.CSS_SELECTOR, ".name").text == XSS_NAME)
    assert XSS_NAME in card.text
    card.click()
    title = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".clip-name"), "the clip page")[0]
    assert title.text == XSS_NAME
    time.sleep(0.5)  # give an injected onerror a chance to fire
    assert no_alert(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert browser.execute_script("return document.querySelectorAll('[onerror]').length") == 0


def test_runs_page_shows_the_finished_ingest_and_the_failure(site: str, browser: Any,
                                                            web_home: WebHome) -> None:
    from selenium.webdriver.common.by import By

    browser.get(site + "/#/runs")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".run"), "the runs list")
    progress = browser.find_element(By.CSS_SELECTOR, ".progress").text
    assert "Last ingest finished" in progress
    run = browser.find_element(By.CSS_SELECTOR, ".run").text
    assert web_home.summary["run_id"] in run and "broken.mp4" in run
