// Saves this site on the device (sw.js) so that the page also starts without a network, and says so in
// #offline. main.py calls window.eyestateSaveOffline() once the page is ready, so that saving never competes
// with loading: by then the browser has every file, and the service worker mostly gets "not modified" answers.
// ?offline=0 removes the saved copy and the worker. Browsers offer service workers only to pages served over
// HTTPS or from localhost.
(() => {
  const MB = (bytes) => (bytes / 1e6).toFixed(0);
  const SAVING = "Saving this page on this device for use without a network…";

  function show(state, text, version) {
    const note = document.getElementById("offline");
    if (!note) return;
    note.dataset.state = state;
    if (version) note.dataset.version = version;
    if (note.textContent !== text) note.textContent = text;  // a live region: the same words are not said again
    note.hidden = !text;
  }

  function onMessage({ data }) {
    if (!data || typeof data !== "object") return;
    if (data.type === "offline-failed" && data.older) {
      show("failed", `Could not save the site's new version on this device (${data.reason}); the copy saved before ` +
           "still starts without a network.");
    } else if (data.type === "offline-failed") {
      show("failed", `Could not save this page for use without a network (${data.reason}).`);
    } else if (data.type === "offline-saving") {
      show("saving", SAVING);
    } else if (data.type !== "offline-status") {
      return;
    } else if (data.dev) {
      show("off", "");  // site/ served without build.py: nothing to save
    } else if (data.offline) {
      show("offline", "The site cannot be reached (no network?): running from the copy saved on this device.",
           data.version);
    } else if (data.saved) {
      show("ready", `Saved on this device (${MB(data.bytes)} MB): the page also starts without a network.`,
           data.version);
    }
  }

  // ?offline=0: no copy on this device; one saved before is removed with its worker.
  async function removeCopy(workers) {
    const registration = await workers.getRegistration();
    if (registration) await registration.unregister();
    const scope = new URL("./", document.baseURI).href;
    for (const key of await caches.keys()) {
      if (key.startsWith(`eyestate-offline:${scope}:`)) await caches.delete(key);
    }
  }

  window.eyestateSaveOffline = async () => {
    const workers = navigator.serviceWorker;
    if (!workers) return show("off", "");
    if (new URLSearchParams(location.search).get("offline") === "0") {
      show("off", "");
      try { await removeCopy(workers); } catch (error) { console.warn(`offline copy not removed: ${error}`); }
      document.getElementById("offline").dataset.removed = "true";
      return;
    }
    workers.addEventListener("message", onMessage);
    show("saving", SAVING);
    // The worker in charge says at once whether this page runs from the copy: register() can wait for the browser's
    // check for a new sw.js, which a network that hangs never answers.
    workers.ready.then((ready) => ready.active.postMessage({ type: "status" }));
    try {
      const registration = await workers.register("sw.js");
      if (!registration) return show("off", "");  // registration blocked (an automated browser)
      const installing = registration.installing;
      if (installing) {
        installing.addEventListener("statechange", () => {
          if (installing.state === "redundant" && !registration.active) {
            show("failed", "Could not save this page for use without a network.");
          }
        });
      }
    } catch (error) {
      show("failed", `Could not save this page for use without a network (${error.message}).`);
    }
  };
})();
