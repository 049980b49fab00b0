"""PyScript entry point: load the models with visible progress, then hand over to page_app.App.

Start-up stage times (ms since navigation) go to `window.eyestateTimings` for the benchmark:
pyodide_ms (this file starts running), modules_ms, <model>_ms per model, models_ms, ready_ms, and
later camera_ms, first_label_ms, and light_mode_ms / full_again_ms (the latest switch into and out of light
mode, eyecore/budget.py).
"""
import asyncio
import json

import js
from pyodide.ffi import create_once_callable

PYTHON_STARTED = js.performance.now()

from pyscript.js_modules import ort  # noqa: E402  (self-hosted, see pyscript.json)

from eyecore import states as S  # noqa: E402
from eyecore.frame import PipelineConfig  # noqa: E402
from eyecore.preprocess import PreprocessSpec  # noqa: E402
from page_app import App, number_param, query_param  # noqa: E402
from page_view import View  # noqa: E402
from web_runtime import WebRuntime  # noqa: E402


class Timings(dict):
    """Stage times, mirrored into window.eyestateTimings as they happen."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        setattr(js.window.eyestateTimings, key, round(float(value), 1))

    def setdefault(self, key, value):
        if key not in self:
            self[key] = value
        return self[key]


async def fetch_json(url: str) -> dict:
    response = await js.fetch(url)
    if not response.ok:
        raise RuntimeError(f"{url}: HTTP {response.status}")
    return json.loads(await response.text())


# Browser features the page cannot run without (web_runtime.py draws camera pictures and eye crops on them)
REQUIRED_APIS = ("OffscreenCanvas", "WebAssembly")


def give_up_start() -> None:
    """The page cannot run: Start stays disabled (a click would otherwise open the camera through index.html's
    early start), and a camera that an early Start click already opened is closed."""
    start = js.document.getElementById("start")
    start.disabled, start.textContent = True, "Start camera"
    early = getattr(js.window, "eyestateEarlyStart", None)
    if early and early.stream:
        early.stream.then(create_once_callable(lambda stream: [t.stop() for t in stream.getTracks()]))
    js.window.eyestateEarlyStart = None


async def load_models(view, config: dict, timings: Timings, needed: list) -> dict:
    """All needed ort-web sessions in parallel; each stage is ticked off as it finishes. Sessions the
    page's preload script (index.html) already started while Pyodide booted are reused."""
    base = js.URL.new("./", js.document.baseURI).href
    preload = getattr(js.window, "eyestatePreload", None)
    if not preload:
        # One ort-web thread: the frame pipeline is sequential and Python shares the CPU; two threads
        # measured 2x slower on a 2-core machine (scripts/bench_page.py --variant "?threads=2").
        WebRuntime.configure(ort, base + "vendor/ort/", int(number_param("threads", 1, 1, 16)))
    files = {name: config["models"][name] for name in needed}

    async def one(name, path):
        try:
            if preload and getattr(preload.paths, name, None) == path:
                session = await getattr(preload.sessions, name)
            else:
                session = await WebRuntime.create_session(ort, base + path)
        except Exception as error:
            view.stage_done(name, 0, ok=False)
            raise RuntimeError(f"could not load {path}: {error}") from error
        timings[f"{name}_ms"] = js.performance.now()
        view.stage_done(name, js.performance.now())
        return name, session

    sessions = dict(await asyncio.gather(*(one(n, p) for n, p in files.items())))
    timings["models_ms"] = js.performance.now()
    return sessions


async def boot() -> None:
    timings = Timings()
    timings["pyodide_ms"] = PYTHON_STARTED
    view = View()
    machine = S.AppStateMachine(on_change=view.show_state)
    view.show_state(machine)
    view.stage_done("pyodide", PYTHON_STARTED)
    timings["modules_ms"] = js.performance.now()
    view.stage_done("modules", timings["modules_ms"])
    missing = [name for name in REQUIRED_APIS if not hasattr(js, name)]
    if missing:  # said as what it is: no reload can help
        give_up_start()
        machine.go(S.MODEL_FAILED, detail=f"missing: {', '.join(missing)}",
                   message="This browser lacks what the page needs to read the camera. Use a current Chrome, Edge, "
                           "Firefox or Safari (16.4 or later).")
        return
    try:
        config = await fetch_json("page_config.json")
        eye_meta = await fetch_json(config["eye_model_json"])
        choice = query_param("eye")
        if choice:
            if choice not in config["eye_models"]:
                raise RuntimeError(f"?eye={choice}: expected one of {config['eye_models']}")
            config["models"]["eye_state"] = config["eye_models"][choice]
        spec = PreprocessSpec.from_dict(eye_meta["preprocess"])
        pipeline_config = PipelineConfig(preprocess=spec)
        # The iris model only feeds p_open when it has a weight; skip it otherwise. ?iris=0 drops it
        # (classifier alone: faster, for slow devices and for the benchmark).
        if query_param("iris") == "0":
            pipeline_config.iris_weight = 0.0
        pipeline_config.use_iris = pipeline_config.iris_weight > 0
        if query_param("alternate") == "0":  # the iris model reads both eyes on every frame (A/B timing)
            pipeline_config.iris_alternate_below_s = 0.0
        # seconds between calm iris readings of one eye (A/B timing)
        pipeline_config.iris_refresh_s = number_param("iris_refresh", pipeline_config.iris_refresh_s, 0.0, 10.0)
        needed = ["face_detection", "face_landmark", "eye_state"] + (["iris_landmark"] if pipeline_config.use_iris else [])
        if not pipeline_config.use_iris:
            view.stage_done("iris_landmark", 0, ok=True)
            js.document.querySelector('#loading li[data-stage="iris_landmark"] .ms').textContent = "not needed"
        sessions = await load_models(view, config, timings, needed)
        machine.go(S.LOADING, message="Models loaded; starting…")  # not "Loading the models" once they are
        runtime = WebRuntime(ort, sessions, config["inputs"])
        app = App(runtime, pipeline_config, machine, view, timings)
        app.wire()
    except Exception as error:
        js.console.error(f"eye-state start-up failed: {error}")
        give_up_start()
        machine.go(S.MODEL_FAILED, detail=str(error)[:300])
        return
    js.window.eyestateApp = app  # for debugging in the console
    view.loading_finished()
    js.document.getElementById("start").disabled = False  # index.html disables it on an error before Python was up
    machine.go(S.READY)
    timings["ready_ms"] = js.performance.now()
    app.take_early_start()
    save_offline = getattr(js.window, "eyestateSaveOffline", None)  # offline.js: keep a copy on this device
    if save_offline:
        save_offline()


asyncio.ensure_future(boot())
