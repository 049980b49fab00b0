"""PNG app icons from site/favicon.svg, for phones: Android installs a web app only with PNG icons of 192 and 512 px.

    python scripts/make_icons.py        # writes site/icons/icon-192.png, icon-512.png, icon-maskable-512.png

Rendered by the same headless Chromium as the browser tests (Debian's /usr/bin/chromium through Playwright). The
maskable icon puts the eye on the theme colour inside the central 60 % (launchers crop it to a circle or squircle).
The PNGs are committed; rerun this after changing the SVG.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

ICONS = ROOT / "site" / "icons"
SVG = ROOT / "site" / "favicon.svg"


def page_html(svg: str, size: int, maskable: bool) -> str:
    background = json.load(open(ROOT / "site" / "app.webmanifest"))["theme_color"] if maskable else "transparent"
    inner = round(size * (0.6 if maskable else 1.0))
    sized = svg.replace("<svg ", '<svg width="100%" height="100%" ', 1)
    return (f"<html><body style='margin:0;background:transparent'><div style='width:{size}px;height:{size}px;"
            f"background:{background};display:flex;align-items:center;justify-content:center'>"
            f"<div style='width:{inner}px;height:{inner}px'>{sized}</div></div></body></html>")


def main() -> None:
    from playwright.sync_api import sync_playwright

    from browser_utils import launch

    svg = SVG.read_text()
    ICONS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        for name, size, maskable in (("icon-192.png", 192, False), ("icon-512.png", 512, False),
                                     ("icon-maskable-512.png", 512, True)):
            page = browser.new_page(viewport={"width": size, "height": size})
            page.set_content(page_html(svg, size, maskable))
            page.screenshot(path=str(ICONS / name), omit_background=not maskable,
                            clip={"x": 0, "y": 0, "width": size, "height": size})
            page.close()
            print(f"wrote {ICONS / name}")
        browser.close()


if __name__ == "__main__":
    main()
