// A clock that keeps running while the page is not rendered (another tab or window in front). The page's own
// frame callbacks (requestVideoFrameCallback) stop with rendering and its timers are throttled to 1 Hz or less, but
// a dedicated worker's timers are not: page_app.py reads camera frames on these ticks when the callbacks stop, so
// the microsleep alarm keeps watching. postMessage(ms) starts ticking every ms milliseconds; postMessage(0) stops.
let timer = null;
onmessage = (event) => {
  clearInterval(timer);
  timer = event.data > 0 ? setInterval(() => postMessage(performance.now()), event.data) : null;
};
