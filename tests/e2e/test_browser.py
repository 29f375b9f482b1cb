"""The app served by `docker compose up`, used from a real browser: headless Chromium driven by Selenium.

Needs Debian's chromium and chromium-driver packages:

    apt-get install -y --no-install-recommends chromium chromium-driver

The driver path goes to Selenium explicitly, so Selenium Manager never runs
and nothing is downloaded. Screenshots and the measured timings land in
ARTIFACTS_DIR (default: artifacts/).
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import ARTIFACTS, ComposeProject

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="Requires: Chromium and chromedriver on PATH (Debian packages chromium, chromium-driver)",
    ),
]

# Headless and sandbox-free (tests may run as root), and no traffic of Chromium's own:
# without the background-networking, component-update and sync flags it tries to reach outside hosts.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1800",
)
# Seconds to wait for the first render and for a prediction, generous because the machine may be busy.
PAGE_TIMEOUT = 120
PREDICTION_TIMEOUT = 60
SAMPLE_NAME = "known-sample.png"
SAMPLE_CLASS = "cross"
# Streamlit counts megabytes in the decimal sense: STREAMLIT_SERVER_MAX_UPLOAD_SIZE=10 admits 10,000,000 bytes.
MAX_UPLOAD_BYTES = 10_000_000

# Runs in the serving container: draw one SAMPLE_CLASS image with the generator the model was
# trained on, at 200 pixels like a typical upload (the app scales it down), and print it as base64 PNG.
DRAW_SAMPLE = f"""
import base64, io, numpy as np
from lockstep.data import draw_shape
buffer = io.BytesIO()
draw_shape("{SAMPLE_CLASS}", np.random.default_rng(3), 200).save(buffer, "PNG")
print(base64.b64encode(buffer.getvalue()).decode())
"""


@pytest.fixture
def browser(tmp_path: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def known_sample(stack_up: ComposeProject, tmp_path: Path) -> Path:
    """A PNG of SAMPLE_CLASS, drawn inside the serving container (the host needs no Pillow)."""
    drawn = stack_up.compose("exec", "-T", "serve", "python", "-c", DRAW_SAMPLE, timeout=120)
    assert drawn.returncode == 0, drawn.stderr
    path = tmp_path / SAMPLE_NAME
    path.write_bytes(base64.b64decode(drawn.stdout.strip()))
    return path


def _wait(driver, condition, timeout: float = PREDICTION_TIMEOUT):
    """Return condition(driver)'s first truthy value, polling while Streamlit re-renders the page."""
    # Each rerun replaces elements, so one found a moment ago may be gone when its text is read.
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def _open_page(driver, url: str) -> None:
    """Load the app and wait until Streamlit has rendered the uploader."""
    driver.get(url)
    _wait(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stFileUploader'] input[type='file']"),
        PAGE_TIMEOUT,
    )


def _wait_until_idle(driver) -> None:
    """Wait until no script run is in progress, so that a screenshot shows the finished page."""
    _wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-testid^='stStatusWidgetRunning']"))


def _upload(driver, path: Path) -> None:
    driver.find_element(By.CSS_SELECTOR, "[data-testid='stFileUploader'] input[type='file']").send_keys(str(path))


def _click_button(driver, label: str) -> bool:
    """Click the button labelled label, or return False while the page shows none."""
    for button in driver.find_elements(By.TAG_NAME, "button"):
        if button.text.strip() == label:
            button.click()
            return True
    return False


def _markdown_texts(driver) -> list[str]:
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stMarkdownContainer']")]


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def test_browser_shows_prediction_for_upload(stack_up: ComposeProject, browser, known_sample: Path):
    started = time.monotonic()
    _open_page(browser, stack_up.url)
    rendered = time.monotonic()
    _upload(browser, known_sample)
    heading = _wait(
        browser, lambda d: next((text for text in _markdown_texts(d) if text.startswith(f"{SAMPLE_NAME} → ")), None)
    )
    predicted = time.monotonic()
    _wait_until_idle(browser)
    screenshot = _screenshot(browser, "browser-prediction.png")

    # Timings are recorded for reading, not asserted: they depend on the machine.
    timings = {
        "page_open_to_uploader_s": round(rendered - started, 2),
        "upload_to_prediction_s": round(predicted - rendered, 2),
        "page_open_to_first_prediction_s": round(predicted - started, 2),
    }
    (ARTIFACTS / "browser-timings.json").write_text(json.dumps(timings, indent=2) + "\n")

    assert browser.title == "lockstep classifier"
    assert heading.startswith(f"{SAMPLE_NAME} → {SAMPLE_CLASS} (")
    assert any(text.startswith("Stack parity: this image runs the stack") for text in _markdown_texts(browser))
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']") == []
    assert screenshot.stat().st_size > 0


def test_browser_rejects_upload_over_size_limit(stack_up: ComposeProject, browser, tmp_path: Path):
    # The browser checks the size before anything reads the content, so zeros will do.
    oversized = tmp_path / "oversized.png"
    oversized.write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1))
    _open_page(browser, stack_up.url)
    _upload(browser, oversized)

    uploader = _wait(
        browser,
        lambda d: next(
            (e.text for e in d.find_elements(By.CSS_SELECTOR, "[data-testid='stFileUploader']") if "Error" in e.text),
            None,
        ),
    )
    _screenshot(browser, "browser-oversized-upload.png")

    assert "File must be 10.0MB or smaller" in uploader
    assert "up to 10 MB each" in uploader
    assert not any(text.startswith("oversized.png → ") for text in _markdown_texts(browser))
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']") == []


def test_browser_reports_bad_upload_and_stays_usable(stack_up: ComposeProject, browser, tmp_path: Path):
    # Exactly at the byte limit, so Streamlit passes it on and the app's own check has to reject it.
    not_an_image = tmp_path / "not-an-image.png"
    not_an_image.write_bytes(b"\0" * MAX_UPLOAD_BYTES)
    _open_page(browser, stack_up.url)
    _upload(browser, not_an_image)

    error = _wait(
        browser,
        lambda d: next((e.text for e in d.find_elements(By.CSS_SELECTOR, "[data-testid='stAlertContentError']")), None),
    )
    _wait(browser, lambda d: _click_button(d, SAMPLE_CLASS))
    sample = _wait(
        browser, lambda d: next((text for text in _markdown_texts(d) if text.startswith("generated ")), None)
    )
    _wait_until_idle(browser)
    _screenshot(browser, "browser-bad-upload.png")

    assert error.startswith("not-an-image.png was not classified: the file is not a PNG, JPEG")
    assert sample.startswith(f"generated {SAMPLE_CLASS} #1 → ")
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']") == []
