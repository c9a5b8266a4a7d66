"""Screenshot of a page of the Prefect UI in headless Chromium (Selenium), e.g. a deployment and its runs.

Needs the Debian packages ``chromium`` and ``chromium-driver`` and the ``browser`` extra (selenium)::

    python -m pipeline.deployments.screenshot --ui http://127.0.0.1:4200 --deployment retraining/retraining \
        --expect retraining --out .pipeline/reports/prefect-ui/retraining.png
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def browser_available() -> bool:
    """True when chromium, chromedriver and selenium are all installed."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def deployment_page(ui_url: str, deployment_id) -> str:
    return f"{ui_url.rstrip('/')}/deployments/deployment/{deployment_id}"


def capture_page(
    url: str, out: Path, expect: list[str] = (), timeout: float = 90.0, size: tuple[int, int] = (1600, 1000)
) -> dict:
    """Open ``url``, wait until every string of ``expect`` shows on the page, save a PNG to ``out``.

    Returns ``{"path", "title", "text", "values"}``: the page's visible text and its form fields' values.
    Raises TimeoutError naming the missing strings when the page does not show them in ``timeout`` seconds.
    """
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
        try:
            driver.get(url)

            def shows_everything(d) -> bool:
                text = d.find_element(By.TAG_NAME, "body").text
                return all(item in text for item in expect)

            try:
                WebDriverWait(driver, timeout, poll_frequency=0.5).until(shows_everything)
            except TimeoutException as exc:
                text = driver.find_element(By.TAG_NAME, "body").text
                missing = [item for item in expect if item not in text]
                driver.save_screenshot(str(out))
                raise TimeoutError(f"{url} did not show {missing} within {timeout:.0f} s (screenshot {out})") from exc
            text = driver.find_element(By.TAG_NAME, "body").text
            fields = driver.find_elements(By.CSS_SELECTOR, "input, textarea")
            driver.save_screenshot(str(out))
            values = [f.get_attribute("value") or "" for f in fields]
            return {"path": str(out), "title": driver.title, "text": text, "values": values}
        finally:
            driver.quit()


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - thin CLI
    import argparse

    from prefect import get_client

    parser = argparse.ArgumentParser(description="Screenshot a deployment's page in the Prefect UI.")
    parser.add_argument("--ui", default="http://127.0.0.1:4200")
    parser.add_argument("--deployment", default="retraining/retraining", help="flow-name/deployment-name")
    parser.add_argument("--expect", action="append", default=[], help="text the page must show (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(args.deployment)
    print(capture_page(deployment_page(args.ui, deployment.id), args.out, args.expect)["path"])


if __name__ == "__main__":  # pragma: no cover
    main()
