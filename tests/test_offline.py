"""The offline copy (site/sw.js, site/offline.js) in headless Chromium: after one visit the page starts and runs
with the site gone, and a rebuilt site is used at once and replaces the saved copy.

Each test serves its own copy of dist/ with build.py's server and shuts that server down to take the network away
(connection refused, as with a site that cannot be reached), or puts a server of its own at the same address (one that
answers errors, never answers, or answers slowly)."""
from __future__ import annotations

import contextlib
import http.server
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_utils import (CHROMIUM, CHROMIUM_FLAGS, ROOT, browser_missing_reason, collect_console, launch,  # noqa: E402
                           serve, synthetic_y4m, wait_state)

pytestmark = [pytest.mark.browser, pytest.mark.flaky(reruns=1, only_rerun=["Target crashed"])]

BOOT_TIMEOUT_MS = 120_000
SAVE_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    reason = browser_missing_reason()
    if reason:
        pytest.skip(reason)
    if not (ROOT / "models" / "eye_state.onnx").exists():
        pytest.skip(f"{ROOT / 'models' / 'eye_state.onnx'} is missing; make it with `python -m pipeline.export`")
    sys.path.insert(0, str(ROOT))
    import build

    out = tmp_path_factory.mktemp("offline") / "dist"
    build.build(out)
    return out


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    return synthetic_y4m(tmp_path_factory.mktemp("camera") / "no_face.y4m", duration_s=2.0)


@pytest.fixture(scope="module")
def browser(playwright, camera):
    browser = launch(playwright, camera)
    yield browser
    browser.close()


def visit(page, url: str) -> None:
    page.goto(url)
    wait_state(page, "ready", BOOT_TIMEOUT_MS)


def wait_saved(page, version: str | None = None) -> str:
    page.wait_for_function(
        """v => { const n = document.getElementById('offline');
                  return n.dataset.state === 'ready' && (!v || n.dataset.version === v); }""",
        arg=version, timeout=SAVE_TIMEOUT_MS)
    return page.get_attribute("#offline", "data-version")


@contextlib.contextmanager
def answering(base: str, respond):
    """The site's address answered by `respond(handler)` for every request: a stand-in for the site."""
    import build

    class StandIn(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            respond(self)

        def log_message(self, *args):
            pass

    server = build.SiteServer(("127.0.0.1", urlparse(base).port), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def answering_503(base: str):
    """Every request answered with 503 (a proxy in front of a server that is down)."""
    return answering(base, lambda handler: handler.send_error(503, "Service Unavailable"))


@contextlib.contextmanager
def hanging(base: str):
    """Connections to the site are accepted and read, and never answered (a captive portal, "lie-fi"); yields the
    list of the paths asked for."""
    released, asked = threading.Event(), []

    def respond(handler):
        asked.append(handler.path)
        released.wait(120)

    with answering(base, respond):
        try:
            yield asked
        finally:
            released.set()  # the stand-in's threads end (each closes its connection unanswered)


def slow_notice(headers_after_s: float, body_over_s: float = 0.0):
    """A stand-in that answers NOTICE.md with its own text, the headers after `headers_after_s` and the body spread
    over `body_over_s` (a big file arriving slowly)."""
    def respond(handler):
        time.sleep(headers_after_s)
        body = b"from the network\n"
        handler.send_response(200)
        handler.send_header("Content-Type", "text/markdown")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        for byte in body:
            time.sleep(body_over_s / len(body))
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
    return respond


def rebuild_with(out: Path, name: str, text: str) -> str:
    """A changed file, as a rebuild after a retrain would bring: new manifest, new sw.js version."""
    import build

    (out / name).write_text(text)
    version = build.write_service_worker(out, build.write_manifest(out))
    build.write_manifest(out)
    return version


def site_copy_and_page(dist, browser, tmp_path) -> tuple:
    """A copy of the built site that a test may change or take down, and a page (with its console) in a context of
    its own, service workers allowed."""
    site = tmp_path / "dist"
    shutil.copytree(dist, site)
    context = browser.new_context()
    page = context.new_page()
    console: list = []
    collect_console(page, console)
    return site, context, page, console


def test_after_one_visit_the_page_starts_and_runs_without_the_site(dist, browser, tmp_path):
    site, context, page, console = site_copy_and_page(dist, browser, tmp_path)
    try:
        with serve(site) as base:
            visit(page, base + "index.html")
            wait_saved(page)
            assert "Saved on this device" in page.text_content("#offline")
        with answering_503(base):  # the server answers, with errors only: the saved copy stands in
            page.reload()
            wait_state(page, "ready", BOOT_TIMEOUT_MS)
            page.wait_for_function("document.getElementById('offline').dataset.state === 'offline'", timeout=10_000)
        # The server is gone: every request of the reload fails unless the saved copy answers it.
        responses = []
        page.on("response", lambda response: responses.append(response))
        page.reload()
        wait_state(page, "ready", BOOT_TIMEOUT_MS)
        page.wait_for_function("document.getElementById('offline').dataset.state === 'offline'", timeout=10_000)
        assert "running from the copy saved on this device" in page.text_content("#offline")
        page.click("#start")
        wait_state(page, "no-face", 30_000)  # the face detector ran on camera frames
        assert page.evaluate("window.eyestateLog.length") > 0
        assert responses and all(r.from_service_worker for r in responses), \
            [r.url for r in responses if not r.from_service_worker]
        # Settings in the address survive (?alarm= is a per-visit setting): any query gets the saved page.
        visit(page, base + "index.html?alarm=3")
        assert page.input_value("#alarm-after") == "3"
        visit(page, base)  # the site's root address is the page too
        with pytest.raises(Exception, match="net::ERR"):  # other addresses are not answered with this page
            page.goto(base + "some/other/page.html")
    except Exception:
        print("\n".join(console[-30:]))
        raise
    finally:
        context.close()


def test_a_site_that_never_answers_starts_the_saved_copy_after_a_few_seconds(dist, browser, tmp_path):
    """sw.js waits NETWORK_TIMEOUT_MS (4 s) for the headers of a page when there is a saved copy to fall back to, then
    starts the copy, whose files come from the copy too; the files of a page that came from the site are waited for,
    and a slow answer is used, however long its body takes."""
    site, context, page, console = site_copy_and_page(dist, browser, tmp_path)
    read_notice = "async () => (await fetch('NOTICE.md')).text()"
    saved_notice = (site / "NOTICE.md").read_text()
    try:
        with serve(site) as base:
            visit(page, base + "index.html")
            wait_saved(page)
        with answering(base, slow_notice(headers_after_s=1.5)):  # slow, in time: the site's answer
            assert page.evaluate(read_notice) == "from the network\n"
        with answering(base, slow_notice(headers_after_s=0, body_over_s=8)):  # a file arriving slowly is not cut off
            started = time.monotonic()
            assert page.evaluate(read_notice) == "from the network\n"
            assert time.monotonic() - started > 7
        # A file of a page that came from the site is waited for, however late (its saved version may be older than
        # the page; the saved copy served after 4 s would mix versions).
        with answering(base, slow_notice(headers_after_s=6)):
            started = time.monotonic()
            assert page.evaluate(read_notice) == "from the network\n"
            assert time.monotonic() - started > 5.5
        with hanging(base) as asked:
            for _ in range(2):  # a reload of a page started from the copy tries the site again
                started = time.monotonic()
                page.reload(wait_until="commit", timeout=15_000)  # the saved page, after the timeout
                committed = time.monotonic() - started
                wait_state(page, "ready", BOOT_TIMEOUT_MS)
                page.wait_for_function("document.getElementById('offline').dataset.state === 'offline'",
                                       timeout=10_000)
                print(f"hanging site: page from the saved copy after {committed:.1f} s, "
                      f"ready after {time.monotonic() - started:.1f} s; asked for {asked}")
                assert 3.5 < committed < 10
                assert "running from the copy saved on this device" in page.text_content("#offline")
                started = time.monotonic()  # a page started from the copy takes its files from it, at once
                assert page.evaluate(read_notice) == saved_notice
                assert time.monotonic() - started < 2
            # The pages' files came from the copy without asking the site (and waiting 4 s for each). (The second
            # reload's request may not reach the site: Chromium holds it while the first, same address, is unanswered.)
            assert set(asked) <= {"/index.html", "/sw.js"}, asked
    except Exception:
        print("\n".join(console[-30:]))
        raise
    finally:
        context.close()


def test_a_page_started_from_the_copy_stays_on_it_after_the_browser_stops_the_worker(dist, browser, tmp_path):
    """Browsers stop an idle service worker (after ≈ 30 s) and start it again on the next event: the pages started
    from the saved copy are kept in a cache, so such a page still takes its files from the copy at once (no wait on a
    site that hangs) and is still told it runs offline; pages that are gone are dropped from that list."""
    site, context, page, console = site_copy_and_page(dist, browser, tmp_path)
    manifest = (site / "app.webmanifest").read_text()
    # In-page, capped at 10 s (the hanging site would hold a fetch from the network for 120 s).
    read_manifest = """async () => Promise.race([fetch('app.webmanifest').then((r) => r.text()),
                                                 new Promise((resolve) => setTimeout(() => resolve(null), 10000))])"""
    ask_status = """async () => new Promise((resolve) => {
        const workers = navigator.serviceWorker;
        workers.addEventListener('message', ({ data }) => data.type === 'offline-status' && resolve(data));
        workers.controller.postMessage({ type: 'status' });
    })"""
    # sw.js's list of those pages, [[client id, started (ms)], ...]; `add` puts in one more
    saved_pages = """async (add) => {
        const name = (await caches.keys()).find((key) => key.startsWith('eyestate-offline:') && key.endsWith(':pages'));
        const cache = await caches.open(name);
        const pages = await (await cache.match('pages')).json();
        if (add) await cache.put('pages', new Response(JSON.stringify([...pages, add])));
        return pages;
    }"""
    cdp = context.new_cdp_session(page)
    workers: dict = {}  # versionId -> runningStatus
    cdp.on("ServiceWorker.workerVersionUpdated",
           lambda event: workers.update({v["versionId"]: v["runningStatus"] for v in event["versions"]}))
    cdp.send("ServiceWorker.enable")

    def stop_worker():
        cdp.send("ServiceWorker.stopAllWorkers")
        deadline = time.monotonic() + 10
        while not (workers and all(status == "stopped" for status in workers.values())):
            assert time.monotonic() < deadline, workers
            page.wait_for_timeout(50)  # lets the CDP events in

    try:
        with serve(site) as base:
            visit(page, base + "index.html")
            wait_saved(page)
        with hanging(base) as asked:
            page.reload(wait_until="commit", timeout=15_000)
            wait_state(page, "ready", BOOT_TIMEOUT_MS)
            page.wait_for_function("document.getElementById('offline').dataset.state === 'offline'", timeout=10_000)
            stop_worker()
            started = time.monotonic()  # a fetch starts the worker again: from the copy, at once
            assert page.evaluate(read_manifest) == manifest
            took = time.monotonic() - started
            assert took < 2, f"{took:.1f} s"
            assert set(workers.values()) != {"stopped"}, workers  # it was this fetch that started the worker
            stop_worker()
            assert page.evaluate(ask_status)["offline"] is True  # the status message starts it this time
            this_page = page.evaluate(saved_pages, None)
            assert len(this_page) == 1, this_page
            page.evaluate(saved_pages, ["a-page-closed-long-ago", 0])
            stop_worker()
            assert page.evaluate(ask_status)["offline"] is True
            assert page.evaluate(saved_pages, None) == this_page  # the page that no longer exists is dropped
            assert "/app.webmanifest" not in asked, asked
    except Exception:
        print("\n".join(console[-30:]))
        raise
    finally:
        context.close()


def test_a_rebuilt_site_is_used_at_once_and_replaces_the_saved_copy(dist, browser, tmp_path):
    site = tmp_path / "dist"
    shutil.copytree(dist, site)
    context = browser.new_context()
    page = context.new_page()
    read_notice = "async () => (await fetch('NOTICE.md')).text()"
    eyestate_caches = "async () => (await caches.keys()).filter(k => k.startsWith('eyestate-offline:'))"
    try:
        with serve(site) as base:
            visit(page, base + "index.html")
            first = wait_saved(page)
            # Caches of other sites on the same origin (GitHub Pages: user.github.io/other/) are left alone.
            sibling = f"eyestate-offline:{base}other/:1"
            page.evaluate("""name => Promise.all([caches.open(name), caches.open('another-app')])""", sibling)
            second = rebuild_with(site, "NOTICE.md", "rebuilt site\n")
            assert second != first
            page.reload()
            wait_state(page, "ready", BOOT_TIMEOUT_MS)
            assert page.evaluate(read_notice) == "rebuilt site\n"  # online: the site's files, not the saved copy
            wait_saved(page, second)
            assert sorted(page.evaluate(eyestate_caches)) == sorted([f"eyestate-offline:{base}:{second}", sibling])
            assert "another-app" in page.evaluate("caches.keys()")
            # ?offline=0 removes this site's copy and worker, nothing else
            visit(page, base + "index.html?offline=0")
            page.wait_for_function("document.getElementById('offline').dataset.removed === 'true'")
            assert page.evaluate(eyestate_caches) == [sibling]
            assert page.evaluate("navigator.serviceWorker.getRegistrations().then(r => r.length)") == 0
            visit(page, base + "index.html")  # saved again
            wait_saved(page, second)
        page.reload()
        wait_state(page, "ready", BOOT_TIMEOUT_MS)
        assert page.evaluate(read_notice) == "rebuilt site\n"  # offline: the new copy
    finally:
        context.close()


def test_the_page_can_be_installed_as_an_app(dist, playwright, camera, tmp_path):
    """A web app manifest and the offline copy: Chromium offers "Install" (a window of its own, which also starts
    without a network). Checked with DevTools' installability report, in a normal profile (never offered in an
    incognito one, which is what a plain Playwright context is)."""
    context = playwright.chromium.launch_persistent_context(
        tmp_path / "profile", executable_path=CHROMIUM,
        args=CHROMIUM_FLAGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                               f"--use-file-for-fake-video-capture={camera}"])
    try:
        page = context.new_page()
        with serve(dist) as base:
            visit(page, base + "index.html")
            wait_saved(page)
            report = context.new_cdp_session(page).send("Page.getInstallabilityErrors")
            manifest = context.new_cdp_session(page).send("Page.getAppManifest")
            # phones install a web app only with PNG icons of 192 and 512 px (scripts/make_icons.py)
            icons = page.evaluate("""async () => {
                const manifest = await (await fetch('app.webmanifest')).json();
                return Promise.all(manifest.icons.filter((icon) => icon.type === 'image/png').map(async (icon) => {
                    const bitmap = await createImageBitmap(await (await fetch(icon.src)).blob());
                    return [icon.sizes, `${bitmap.width}x${bitmap.height}`, icon.purpose];
                }));
            }""")
    finally:
        context.close()
    assert icons == [["192x192", "192x192", "any"], ["512x512", "512x512", "any"], ["512x512", "512x512", "maskable"]]
    assert report["installabilityErrors"] == []
    assert manifest["errors"] == [] and '"start_url": "./"' in manifest["data"]
