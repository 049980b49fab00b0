// Service worker: keeps a copy of this site on the device, so that the page also starts without a network.
// Network first: whenever the site answers, every file comes from it as before (a rebuilt site is used at once);
// only when a request fails, the server answers with an error (5xx), or a page's own answer has not begun within
// NETWORK_TIMEOUT_MS (a network that hangs), is the saved copy served; a page started from it takes the rest of its
// files from it too. build.py writes BUILD (the build's version and every file of dist/); a new version of this file
// installs the new copy and deletes the old one.
const BUILD = { version: "dev", files: [], bytes: 0 };
// How long a page (a navigation) that has a saved copy waits for the site's answer to begin (its headers: a page that
// is arriving is never cut off). Without a saved copy it waits as long as the browser does.
const NETWORK_TIMEOUT_MS = 4000;

// One origin can host several sites (GitHub Pages: user.github.io/a/, /b/): caches are named per scope.
const PREFIX = `eyestate-offline:${self.registration.scope}:`;
const CACHE = PREFIX + BUILD.version;
// The pages (client ids) that were started from the saved copy. Browsers stop an idle worker and start it again on the
// next event, so the list is also kept in a cache, read once per start. It belongs to this version: a new version is
// only installed from a site that answers, and its activation deletes the old copy these pages came from.
const PAGES = CACHE + ":pages";
let servedOffline = null;  // a promise of the Map: client id -> when its page was started (ms)
let storing = Promise.resolve();
let saving = null;  // the save in progress

// "no-cache" asks the site whether each file changed: the page has just loaded them, so unchanged files cost a 304,
// and a file changed since then is fetched anew instead of taken from the HTTP cache.
async function save() {
  const cache = await caches.open(CACHE);
  await Promise.all(["./", ...BUILD.files].map(async (url) => {
    let response = await fetch(new Request(url, { cache: "no-cache" }));
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    if (response.redirected) {  // a host that redirects (index.html -> ./): browsers refuse such a saved answer
      response = new Response(await response.blob(), { status: response.status, statusText: response.statusText,
                                                       headers: response.headers });
    }
    await cache.put(url, response);
  }));
}

function saveOnce() {
  saving = saving || save().finally(() => { saving = null; });
  return saving;
}

async function isSaved() {
  if (BUILD.version === "dev" || !(await caches.has(CACHE))) return false;
  return (await (await caches.open(CACHE)).keys()).length >= BUILD.files.length + 1;
}

function offlinePages() {
  servedOffline = servedOffline || (async () => {
    try {
      const stored = await caches.match("pages", { cacheName: PAGES });
      const pages = new Map(stored ? await stored.json() : []);
      if (await forgetClosed(pages)) await storePages(pages);
      return pages;
    } catch (error) {
      servedOffline = null;  // not kept: the next request reads the list again
      return new Map();
    }
  })();
  return servedOffline;
}

// Drops the pages that no longer exist (closed, reloaded, navigated away), so that the list does not grow. A page is
// a client only once its document exists: one started less than a minute ago is kept. Returns whether any was dropped.
async function forgetClosed(pages) {
  const open = new Set((await self.clients.matchAll({ includeUncontrolled: true, type: "all" })).map((c) => c.id));
  const closed = [...pages].filter(([id, started]) => !open.has(id) && Date.now() - started > 60_000);
  for (const [id] of closed) pages.delete(id);
  return closed.length > 0;
}

// One write at a time, each of the list as it is then: a later write is never overtaken by an earlier one.
function storePages(pages) {
  storing = storing.then(async () => {
    await (await caches.open(PAGES)).put("pages", new Response(JSON.stringify([...pages])));
  }).catch(() => {});
  return storing;
}

self.addEventListener("install", (event) => {
  event.waitUntil(saveOnce()
    .then(() => self.skipWaiting())
    .catch(async (error) => {
      await caches.delete(CACHE);  // this version's own copy: the worker still in charge keeps its own
      const older = (await caches.keys()).some((key) => key.startsWith(PREFIX) && !key.endsWith(":pages"));
      await tellPages({ type: "offline-failed", reason: String(error && error.message || error), older });
      throw error;
    }));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith(PREFIX) && key !== CACHE && key !== PAGES) await caches.delete(key);
    }
    await self.clients.claim();
    for (const page of await self.clients.matchAll({ includeUncontrolled: true })) {
      page.postMessage(await status(page.id));
    }
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) return;
  if (request.cache === "only-if-cached" && request.mode !== "same-origin") return;  // DevTools quirk
  event.respondWith((async () => {
    const navigate = request.mode === "navigate";
    // A page's address may carry settings (?alarm=3): any query gets the saved page. The site's root address is
    // the saved "./"; other addresses in scope that fail stay failures (not this page in their place).
    const root = navigate && new URL(request.url).pathname === new URL(self.registration.scope).pathname;
    const lookup = () => caches.match(root ? "./" : request, { cacheName: CACHE, ignoreSearch: navigate })
      .catch(() => undefined);
    // A page started from the saved copy takes its files from it too: one version, and no wait on a site that hangs.
    // (A navigation has no clientId: a reload tries the site again.)
    if (!navigate && (await offlinePages()).has(event.clientId)) {
      const saved = await lookup();
      if (saved) return saved;
    }
    const network = fetch(request);
    network.catch(() => {});  // a failure after the timeout below has nobody left to tell
    const saved = await lookup();
    let answer;
    try {
      // A site that hangs: a page whose answer has not begun within NETWORK_TIMEOUT_MS starts from the saved copy
      // (and then takes its files from it). The files of a page that came from the site are waited for: their saved
      // versions may be older than that page.
      const late = navigate && saved && new Promise((resolve) => setTimeout(resolve, NETWORK_TIMEOUT_MS));
      answer = await (late ? Promise.race([network, late]) : network);
      if (answer instanceof Response && answer.status < 500) return answer;
    } catch (error) {
      answer = error;
    }
    if (!saved) {
      if (answer instanceof Response) return answer;
      throw answer;
    }
    if (navigate && event.resultingClientId) {  // stored before the page exists: a worker stopped later still knows it
      const pages = await offlinePages();
      pages.set(event.resultingClientId, Date.now());
      await forgetClosed(pages);
      await storePages(pages);
    }
    return saved;
  })());
});

// The microsleep alarm's notification where the page cannot show one itself (page_alarm.py): a click brings the page back.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((pages) => pages.length && pages[0].focus()));
});

self.addEventListener("message", (event) => {
  if (!event.data || event.data.type !== "status" || !event.source) return;
  const page = event.source;
  event.waitUntil((async () => {
    let reply = await status(page.id);
    if (!reply.saved && !reply.offline && BUILD.version !== "dev") {
      // The copy is gone (storage cleared or evicted) or a save was cut off: save it again.
      page.postMessage({ type: "offline-saving" });
      try {
        await saveOnce();
        reply = await status(page.id);
      } catch (error) {
        reply = { type: "offline-failed", reason: String(error && error.message || error) };
      }
    }
    page.postMessage(reply);
  })());
});

async function status(clientId) {
  return { type: "offline-status", version: BUILD.version, saved: await isSaved(), bytes: BUILD.bytes,
           offline: (await offlinePages()).has(clientId), dev: BUILD.version === "dev" };
}

async function tellPages(message) {
  for (const page of await self.clients.matchAll({ includeUncontrolled: true })) page.postMessage(message);
}
