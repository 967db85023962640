"""Headless Chromium for the browser tests, the screenshots and the web benchmark."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and shutil.which(Path(path).name) is None:
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


@contextmanager
def chrome(width: int = 1440, height: int = 900, *, page_load: str = "normal") -> Iterator[object]:
    """Headless Chromium; ``page_load="eager"`` returns from ``get`` at DOMContentLoaded (for paint timing)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="lis-chrome-")
    options = webdriver.ChromeOptions()
    options.page_load_strategy = page_load
    options.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium") or CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                 "--lang=vi"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER if Path(CHROMEDRIVER).exists()
                                              else shutil.which("chromedriver") or CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # element not there yet, stale element
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"condition not met in {timeout} s" + (f" (last error: {last_error})" if last_error else ""))


def input_by_label(driver: object, label: str) -> object:
    """The <input> of the Quasar field whose label text is ``label`` (how users see the form)."""
    from selenium.webdriver.common.by import By

    xpath = (f"//label[.//div[contains(@class,'q-field__label') and normalize-space(text())='{label}']]"
             "//input")
    return driver.find_element(By.XPATH, xpath)  # type: ignore[attr-defined]


def login(driver: object, base: str, username: str, password: str, *, lang_labels: tuple[str, str] | None = None,
          next_path: str = "/worklist") -> None:
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{base}/login?next={next_path}")  # type: ignore[attr-defined]
    user_label, pass_label = lang_labels or ("Tên đăng nhập", "Mật khẩu")
    wait_for(lambda: input_by_label(driver, user_label))
    input_by_label(driver, user_label).send_keys(username)  # type: ignore[attr-defined]
    field = input_by_label(driver, pass_label)
    field.send_keys(password)  # type: ignore[attr-defined]
    field.send_keys(Keys.ENTER)  # type: ignore[attr-defined]
    wait_for(lambda: "/login" not in driver.current_url, timeout=15)  # type: ignore[attr-defined]


def css(driver: object, selector: str) -> list[object]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))  # type: ignore[attr-defined]


def row_status(driver: object, result_id: int) -> str:
    found = css(driver, f'tr[data-result-id="{result_id}"] [data-testid="status"]')
    return str(found[0].text) if found else ""  # type: ignore[attr-defined]


def click_action(driver: object, result_id: int, action: str) -> None:
    """Click a row's action button (retried: a live update may re-render the row between find and click)."""

    def attempt() -> bool:
        found = css(driver, f'tr[data-result-id="{result_id}"] button[data-action="{action}"]')
        if not found:
            return False
        found[0].click()  # type: ignore[attr-defined]
        return True

    wait_for(attempt)


def page_text(driver: object) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)  # type: ignore[attr-defined]


def logout(driver: object, base: str) -> None:
    driver.delete_all_cookies()  # type: ignore[attr-defined]
    driver.get(f"{base}/login")  # type: ignore[attr-defined]


def click(driver: object, selector: str, index: int = 0, timeout: float = 10.0) -> None:
    """Find and click in one retried step (a live update may re-render the element in between)."""

    def attempt() -> bool:
        found = css(driver, selector)
        if not found:
            return False
        found[index].click()  # type: ignore[attr-defined]
        return True

    wait_for(attempt, timeout=timeout)
