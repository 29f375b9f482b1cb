"""Time a real browser from opening the app's page to the first prediction shown.

    .venv/bin/python scripts/benchmark/browser.py --url http://127.0.0.1:8501

Drives headless Chromium through chromedriver (Debian packages chromium and
chromium-driver) with Selenium from .venv. The clock starts when the page is
requested, after the browser itself has started. It stops when the result
line ("NAME → LABEL") appears after one click on the first sample button,
which is the quickest way a user gets a prediction. It measures a first
visit, with an empty browser cache, and a repeat visit in the same browser,
whose cache already holds Streamlit's frontend. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

# The app gives each sample button the key "sample-<class>", which Streamlit
# turns into the CSS class "st-key-sample-<class>" on the button's container.
SAMPLE_BUTTON = (By.CSS_SELECTOR, "[class*='st-key-sample-'] button")
# Each result starts with a Markdown line "NAME → LABEL (probability)".
RESULT_HEADING = (By.XPATH, "//*[@data-testid='stMarkdownContainer'][contains(., '→')]")


def start_browser(chromium: str, chromedriver: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # The background-networking flags keep Chromium from calling Google's services while it runs.
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(argument)
    # An explicit driver path keeps Selenium Manager from looking for one online.
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def visit(browser: webdriver.Chrome, url: str, timeout: float) -> dict:
    """Open the page, click the first sample button, and time both steps."""
    wait = WebDriverWait(browser, timeout, poll_frequency=0.02)
    opened = time.monotonic()
    browser.get(url)
    button = wait.until(expected_conditions.element_to_be_clickable(SAMPLE_BUTTON))
    ready = time.monotonic()
    button.click()
    heading = wait.until(expected_conditions.visibility_of_element_located(RESULT_HEADING))
    result_shown = time.monotonic()
    return {
        "page_open_to_prediction_seconds": round(result_shown - opened, 3),
        "page_open_to_sample_button_seconds": round(ready - opened, 3),
        "click_to_prediction_seconds": round(result_shown - ready, 3),
        "heading": heading.text,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="address of the running app")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for each step [60]")
    args = parser.parse_args(argv)

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        print(
            "error: chromium or chromedriver not found; install the Debian packages chromium and chromium-driver",
            file=sys.stderr,
        )
        return 2

    browser = start_browser(chromium, chromedriver)
    try:
        result = visit(browser, args.url, args.timeout)
        repeat = visit(browser, args.url, args.timeout)
        result["repeat_visit_page_open_to_prediction_seconds"] = repeat["page_open_to_prediction_seconds"]
        result["repeat_visit_page_open_to_sample_button_seconds"] = repeat["page_open_to_sample_button_seconds"]
    except TimeoutException:
        print(
            f"error: the page at {args.url} showed no sample button or no result within {args.timeout:.0f} s",
            file=sys.stderr,
        )
        return 1
    except WebDriverException as error:
        print(f"error: the browser failed: {error.msg}", file=sys.stderr)
        return 1
    finally:
        browser.quit()
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
