// Saves this site on the device (sw.js) so that the page also starts without a network, and says so in
// #offline. main.py calls window.eyestateSaveOffline() once the page is ready, so that saving never competes
// with loading: by then the browser has every file, and the service worker mostly gets "not modified" answers.
// ?offline=0 skips it. Browsers offer service workers only to pages served over HTTPS or from localhost.
(() => {
  const MB = (bytes) => (bytes / 1e6).toFixed(0);

  function show(state, text, version) {
    const note = document.getElementById("offline");
    if (!note) return;
    note.dataset.state = state;
    if (version) note.dataset.version = version;
    note.textContent = text;
    note.hidden = !text;
  }

  function onMessage({ data }) {
    if (!data || typeof data !== "object") return;
    if (data.type === "offline-failed") {
      show("failed", `Could not save this page for use without a network (${data.reason}).`);
    } else if (data.type === "offline-status" && data.offline) {
      show("offline", "The site cannot be reached (no network?): running from the copy saved on this device.", data.version);
    } else if (data.type === "offline-status" && data.saved) {
      show("ready", `Saved on this device (${MB(data.bytes)} MB): the page also starts without a network.`,
           data.version);
    }
  }

  window.eyestateSaveOffline = async () => {
    const workers = navigator.serviceWorker;
    if (!workers || new URLSearchParams(location.search).get("offline") === "0") return show("off", "");
    workers.addEventListener("message", onMessage);
    show("saving", "Saving this page on this device for use without a network…");
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
      const ready = await workers.ready;
      ready.active.postMessage({ type: "status" });
    } catch (error) {
      show("failed", `Could not save this page for use without a network (${error.message}).`);
    }
  };
})();
