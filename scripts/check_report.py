"""Opens a run's report.html in headless Chromium and says what a reader sees.

Prints one JSON object: the page's title, every <img> with whether it
loaded (complete, natural width > 0), and every console error, uncaught
exception and failed request. Used by the runner's CLI test
(`xtask/tests/cli/report.rs`), which asserts on it.

Needs Playwright's Python package (PyPI `playwright`) and a Chromium on the
machine (Debian's `chromium`; Playwright's own browser download is not
used). `.ci/run` installs both.

    python3 scripts/check_report.py runs/NAME/report.html [--chromium /usr/bin/chromium]
"""

import argparse
import json
import pathlib

from playwright.sync_api import sync_playwright

# Headless Chromium on a machine without network access: no background
# connections, no first-run work, a fresh profile.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=pathlib.Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=FLAGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        page.goto(args.page.resolve().as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => ({src: i.getAttribute('src'),"
            " loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth}))"
        )
        title = page.title()
        browser.close()
    print(json.dumps({"title": title, "images": images, "errors": problems}))


if __name__ == "__main__":
    main()
