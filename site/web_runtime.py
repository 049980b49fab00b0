"""onnxruntime-web + canvas implementation of `eyecore.runtime.Runtime` (the page's adapter).

Crops: an OffscreenCanvas per output size, `setTransform` with the RotatedRect's affine, `drawImage`
of the frame snapshot (imageSmoothingQuality "high"), black outside the frame, `getImageData`.
Pixels never enter Python: the models build.py ships take the canvas' RGBA bytes (uint8 [N,H,W,4])
and do the channel mix, scale and offset as their first nodes (build.fuse_rgba_input) — the same
arithmetic as `eyecore.preprocess.rgba_to_input`, checked by tests/test_build.py. A crop whose
TensorSpec differs from what a model was built with is refused, never silently converted wrongly.

ort-web is asynchronous: the page drives `FramePipeline.process_async`, which awaits `run_async`
for each model call. No JSPI (`run_sync`) is needed, so the page runs in every browser with
WebAssembly, OffscreenCanvas and the camera API, not only in Chromium (main.REQUIRED_APIS: one without is told so).
"""
from __future__ import annotations

import js
from pyodide.ffi import to_js

from eyecore.runtime import BLACK_LUMA, WHITE_LUMA

REQUIRED_MODELS = ("face_detection", "face_landmark", "eye_state")  # iris_landmark: only if used
# (rgba, pixels per crop, crops) -> [black, white] pixels per crop; in JS, as a Python loop over every pixel costs
# milliseconds. Integer BT.601 weights (x1000): luma < BLACK_LUMA, luma > WHITE_LUMA.
_COUNT_CLIPPED = js.Function.new("rgba", "perCrop", "crops", f"""
    const counts = [];
    for (let c = 0; c < crops; c++) {{
        let black = 0, white = 0;
        for (let i = c * perCrop * 4, end = i + perCrop * 4; i < end; i += 4) {{
            const luma = 299 * rgba[i] + 587 * rgba[i + 1] + 114 * rgba[i + 2];
            if (luma < {round(BLACK_LUMA * 1000)}) black++;
            else if (luma > {round(WHITE_LUMA * 1000)}) white++;
        }}
        counts.push([black, white]);
    }}
    return counts;""")


def js_obj(value):
    """Python dict/list -> plain JS object/array."""
    return to_js(value, dict_converter=js.Object.fromEntries)


class PixelBatch:
    """RGBA bytes of one or more same-sized crops (N×H×W×4, row-major): a model input in waiting."""

    __slots__ = ("rgba", "n", "height", "width", "spec")

    def __init__(self, rgba, n, height, width, spec):
        self.rgba, self.n, self.height, self.width, self.spec = rgba, n, height, width, spec


def spec_matches(spec, built: dict, tolerance: float = 1e-6) -> bool:
    """Does a pipeline TensorSpec ask for what a model's RGBA front-end computes? (flip is the crop's job)"""
    return (spec.channels == built["channels"] and spec.layout == built["layout"]
            and abs(spec.scale - built["scale"]) <= tolerance * max(1.0, abs(built["scale"]))
            and abs(spec.offset - built["offset"]) <= tolerance * max(1.0, abs(built["offset"])))


class WebRuntime:
    """Runtime over loaded ort-web sessions; `inputs` = page_config.json's input spec per model."""

    def __init__(self, ort, sessions: dict, inputs: dict):
        missing = [name for name in REQUIRED_MODELS if name not in sessions]
        if missing:
            raise ValueError(f"WebRuntime needs sessions for {REQUIRED_MODELS}; missing {missing}")
        self.ort = ort
        self.sessions = sessions
        self.inputs = inputs
        self._canvases = {}
        self._snapshot = None
        self._snapshot_ctx = None
        self.spent_ms = {}  # ms per activity since the last take_spent() (crop, model names)

    # -- loading ---------------------------------------------------------------------------------

    @staticmethod
    def configure(ort, wasm_base_url: str, threads: int | None = None) -> None:
        ort.env.wasm.wasmPaths = wasm_base_url
        ort.env.wasm.proxy = False
        if threads is not None:
            ort.env.wasm.numThreads = threads

    @staticmethod
    async def create_session(ort, url: str):
        response = await js.fetch(url)
        if not response.ok:
            raise RuntimeError(f"{url}: HTTP {response.status}")
        data = js.Uint8Array.new(await response.arrayBuffer())
        options = js_obj({"executionProviders": ["wasm"], "graphOptimizationLevel": "all"})
        return await ort.InferenceSession.create(data, options)

    # -- timing ----------------------------------------------------------------------------------

    def _spent(self, key: str, since: float) -> float:
        now = js.performance.now()
        self.spent_ms[key] = self.spent_ms.get(key, 0.0) + now - since
        return now

    def take_spent(self) -> dict:
        spent, self.spent_ms = self.spent_ms, {}
        return spent

    # -- frames ----------------------------------------------------------------------------------

    def snapshot(self, source, width: int, height: int):
        """Copy the current video frame into a CPU canvas once per frame: every crop of this frame
        then sees the same pixels (a playing video may move on while the pipeline runs)."""
        if self._snapshot is None or self._snapshot.width != width or self._snapshot.height != height:
            self._snapshot = js.OffscreenCanvas.new(width, height)
            self._snapshot_ctx = self._snapshot.getContext("2d", js_obj({"willReadFrequently": True, "alpha": False}))
        self._snapshot_ctx.drawImage(source, 0, 0, width, height)
        return self._snapshot

    def frame_size(self, frame) -> tuple:
        return int(frame.width), int(frame.height)

    def _canvas(self, width: int, height: int):
        key = (width, height)
        if key not in self._canvases:
            canvas = js.OffscreenCanvas.new(width, height)
            ctx = canvas.getContext("2d", js_obj({"willReadFrequently": True, "alpha": False}))
            ctx.imageSmoothingEnabled = True
            ctx.imageSmoothingQuality = "high"
            ctx.fillStyle = "#000"
            self._canvases[key] = ctx
        return self._canvases[key]

    def crop(self, frame, roi, width: int, height: int, spec) -> PixelBatch:
        start = js.performance.now()
        ctx = self._canvas(width, height)
        ctx.setTransform(1, 0, 0, 1, 0, 0)
        ctx.fillRect(0, 0, width, height)  # black outside the frame
        a, b, c, d, e, f = roi.affine_frame_to_crop(width, height)
        if spec.flip_horizontal:  # u -> width - u
            a, b, c = -a, -b, width - c
        # canvas setTransform(a, b, c, d, e, f) maps x' = a x + c y + e, y' = b x + d y + f
        ctx.setTransform(a, d, b, e, c, f)
        ctx.drawImage(frame, 0, 0)
        data = ctx.getImageData(0, 0, width, height).data
        self._spent("crop", start)
        return PixelBatch(js.Uint8Array.new(data.buffer), 1, height, width, spec)

    def stack(self, tensors: list) -> PixelBatch:
        if not tensors:
            raise ValueError("stack needs at least one crop")
        first = tensors[0]

        def kind(t):  # the flip is already in the pixels (crop), so crops flipped or not stack together
            return t.height, t.width, t.spec.layout, t.spec.channels, t.spec.scale, t.spec.offset

        if any(kind(t) != kind(first) for t in tensors):
            raise ValueError("stack: all crops must have the same size and tensor spec (flip aside)")
        per_crop = first.height * first.width * 4
        out = js.Uint8Array.new(per_crop * sum(t.n for t in tensors))
        offset = 0
        for t in tensors:
            out.set(t.rgba, offset)
            offset += per_crop * t.n
        return PixelBatch(out, sum(t.n for t in tensors), first.height, first.width, first.spec)

    def clipped_share(self, crops: PixelBatch, spec=None) -> list:
        per_crop = crops.height * crops.width
        return [(black / per_crop, white / per_crop)
                for black, white in _COUNT_CLIPPED(crops.rgba, per_crop, crops.n).to_py()]

    # -- models ----------------------------------------------------------------------------------

    def _rgba_tensor(self, model: str, batch: PixelBatch):
        built = self.inputs.get(model)
        if built is None or not spec_matches(batch.spec, built):
            raise ValueError(f"{model}: the crop asks for {batch.spec}, but the shipped model's RGBA input "
                             f"computes {built}; rebuild the site (python build.py)")
        return self.ort.Tensor.new("uint8", batch.rgba, to_js([batch.n, batch.height, batch.width, 4]))

    async def run_async(self, model: str, feeds: dict) -> dict:
        if model not in self.sessions:
            raise KeyError(f"no model {model!r} loaded (have {sorted(self.sessions)})")
        session = self.sessions[model]
        if len(feeds) != 1 or not isinstance(next(iter(feeds.values())), PixelBatch):
            raise ValueError(f"{model}: expected one crop (runtime.crop / runtime.stack) as the only input")
        tensor = self._rgba_tensor(model, next(iter(feeds.values())))
        start = js.performance.now()
        outputs = await session.run(js_obj({"rgba": tensor}))
        start = self._spent(model, start)
        result = {name: getattr(outputs, name).data.to_py().tolist() for name in session.outputNames}
        self._spent("outputs", start)
        return result

    def now(self) -> float:
        return js.performance.now() / 1000.0
