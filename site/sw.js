// Service worker: keeps a copy of this site on the device, so that the page also starts without a network.
// Network first: online, every file comes from the site as before (a rebuilt site is used at once, never a stale
// copy); only when a request fails is the saved copy served. build.py writes BUILD (the build's version and every
// file of dist/); a new version of this file installs the new copy and deletes the old one.
const BUILD = { version: "dev", files: [], bytes: 0 };

// One origin can host several sites (GitHub Pages: user.github.io/a/, /b/): caches are named per scope.
const PREFIX = `eyestate-offline:${self.registration.scope}:`;
const CACHE = PREFIX + BUILD.version;
const servedOffline = new Set();  // pages (client ids) that were started from the saved copy

self.addEventListener("install", (event) => {
  // "no-cache" asks the site whether each file changed: the page has just loaded them, so unchanged files cost a
  // 304, and a file changed since then is fetched anew instead of taken from the HTTP cache.
  const requests = ["./", ...BUILD.files].map((url) => new Request(url, { cache: "no-cache" }));
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(requests))
    .then(() => self.skipWaiting())
    .catch(async (error) => {
      await caches.delete(CACHE);
      await tellPages({ type: "offline-failed", reason: String(error && error.message || error) });
      throw error;
    }));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith(PREFIX) && key !== CACHE) await caches.delete(key);
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
  event.respondWith(fetch(request).catch(async (error) => {
    const navigate = request.mode === "navigate";
    // A page's address may carry settings (?alarm=3): any query gets the saved page. The site's root address is
    // the saved "./"; other addresses in scope that fail stay failures (not this page in their place).
    const root = navigate && new URL(request.url).pathname === new URL(self.registration.scope).pathname;
    const saved = await caches.match(root ? "./" : request, { cacheName: CACHE, ignoreSearch: navigate });
    if (!saved) throw error;
    if (navigate && event.resultingClientId) servedOffline.add(event.resultingClientId);
    return saved;
  }));
});

// The microsleep alarm's notification where the page cannot show one itself (page_alarm.py): a click brings the page back.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(self.clients.matchAll({ type: "window" }).then((pages) => pages.length && pages[0].focus()));
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "status" && event.source) {
    event.waitUntil(status(event.source.id).then((reply) => event.source.postMessage(reply)));
  }
});

async function status(clientId) {
  const saved = await caches.has(CACHE)
    && (await (await caches.open(CACHE)).keys()).length >= BUILD.files.length + 1;
  return { type: "offline-status", version: BUILD.version, saved, bytes: BUILD.bytes,
           offline: servedOffline.has(clientId) };
}

async function tellPages(message) {
  for (const page of await self.clients.matchAll({ includeUncontrolled: true })) page.postMessage(message);
}
