"""Build the static site into dist/ (and optionally serve it).

    python build.py                      # dist/ from site/, models/, the npm runtimes and the face models
    python build.py --serve [--port 8000] # build, then serve dist/ with COOP/COEP headers
    python build.py --retrain            # train -> export -> quantize first (needs the [train] extras)

No torch needed for a plain build: `pip install -e .` plus Node.js/npm is enough.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import html
import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SITE = ROOT / "site"
MODELS = ROOT / "models"
NODE_MODULES = ROOT / "node_modules"
FACE_CACHE = ROOT / ".cache" / "face_models"
STDLIB_CACHE = ROOT / ".cache" / "pyodide_stdlib"
PRECOMPILE_SCRIPT = ROOT / "scripts" / "precompile_stdlib.mjs"

# Exact versions; package.json and package-lock.json pin the same ones.
RUNTIME_VERSIONS = {"pyodide": "314.0.7", "@pyscript/core": "0.7.31", "onnxruntime-web": "1.30.0"}

PYODIDE_FILES = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]
# ort.wasm.min.mjs is the CPU (WebAssembly) build; it loads its glue module and the wasm from wasmPaths.
ORT_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]
# PyScript's core chunk imports these plugin chunks at start-up; the rest (editor, terminal, toml, zip)
# load only when a page uses those features, which this one does not.
PYSCRIPT_STARTUP_CHUNKS = ("core", "error", "deprecations-manager", "donkey", "py-editor", "py-game", "py-terminal")

EYE_MODELS = ["eye_state.onnx", "eye_state.json"]
OPTIONAL_EYE_MODELS = ["eye_state.int8.onnx"]
# The int8 classifier, when shipped, is the page's default: in ort-web (wasm, 1 thread, batch 2) it ran
# 7.9 ms vs 11.3 ms median for fp32 (python -m pipeline.ortweb_bench models/eye_state.onnx
# models/eye_state.int8.onnx, eyecnn), and pipeline.quantize only writes it when test accuracy holds.
# `?eye=fp32` switches back.
PREFER_INT8 = True
SITE_SKIP = {"__pycache__", ".pytest_cache"}

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".zip": "application/octet-stream",
    ".py": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    "": "application/octet-stream",
}
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class BuildError(RuntimeError):
    """A build step cannot go on; the message says what is missing and how to get it."""


def step(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


# ---------------------------------------------------------------- npm runtimes


def installed_version(package: str) -> str | None:
    pkg = NODE_MODULES / package / "package.json"
    try:
        return json.loads(pkg.read_text()).get("version")
    except (OSError, ValueError, AttributeError):  # not installed, or broken: reinstalled like a missing one
        return None


def node_modules_stale() -> bool:
    if any(installed_version(p) != v for p, v in RUNTIME_VERSIONS.items()):
        return True
    marker = NODE_MODULES / ".package-lock.json"  # npm writes it on every install
    lock = ROOT / "package-lock.json"
    return not marker.exists() or not lock.exists() or marker.stat().st_mtime < lock.stat().st_mtime


def ensure_npm_runtimes() -> None:
    if not node_modules_stale():
        step("npm runtimes up to date (" + ", ".join(f"{p} {v}" for p, v in RUNTIME_VERSIONS.items()) + ")")
        return
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise BuildError("Node.js and npm are needed to fetch the browser runtimes (pyodide, @pyscript/core, "
                         "onnxruntime-web). Install Node.js >= 18 (e.g. `apt-get install nodejs npm`) and rerun.")
    if not (ROOT / "package-lock.json").exists():
        raise BuildError("package-lock.json is missing; it is committed with the repository (restore it).")
    step("npm ci (installing the pinned browser runtimes)")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT)
    if done.returncode != 0:
        raise BuildError(f"`npm ci` failed with exit code {done.returncode} (see its output above)")
    wrong = {p: installed_version(p) for p, v in RUNTIME_VERSIONS.items() if installed_version(p) != v}
    if wrong:
        raise BuildError(f"after npm ci the installed versions differ from the pinned ones: {wrong}")


def pyscript_chunks(dist_dir: Path) -> list[str]:
    """core.js plus the chunks it imports at start-up (static imports followed transitively)."""
    wanted, todo = [], ["core.js"]
    import_re = re.compile(r'(?:from|import)\s*\(?\s*"\./([\w.-]+\.js)"')
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        if not (dist_dir / name).exists():
            raise BuildError(f"@pyscript/core/dist/{name} is missing; run `npm ci`")
        wanted.append(name)
        for dep in import_re.findall((dist_dir / name).read_text(encoding="utf-8")):
            if dep.rsplit("-", 1)[0] in PYSCRIPT_STARTUP_CHUNKS or dep == "core.js":
                todo.append(dep)
    return sorted(wanted)


def copy_runtimes(out: Path) -> None:
    vendor = out / "vendor"
    sources = {
        "pyodide": (NODE_MODULES / "pyodide", PYODIDE_FILES),
        "ort": (NODE_MODULES / "onnxruntime-web" / "dist", ORT_FILES),
    }
    pyscript_dist = NODE_MODULES / "@pyscript" / "core" / "dist"
    sources["pyscript"] = (pyscript_dist, pyscript_chunks(pyscript_dist) + ["core.css"])
    for folder, (src, names) in sources.items():
        (vendor / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            if not (src / name).exists():
                raise BuildError(f"{src / name} is missing; run `npm ci`")
            shutil.copy2(src / name, vendor / folder / name)
        step(f"vendor/{folder}: {len(names)} files")
    check_wasm(sorted(vendor.rglob("*.wasm")))
    shutil.copy2(NODE_MODULES / "@pyscript" / "core" / "LICENSE", vendor / "pyscript" / "LICENSE")
    shutil.copy2(precompiled_stdlib(NODE_MODULES / "pyodide"), vendor / "pyodide" / "python_stdlib.zip")


def check_wasm(paths: list[Path]) -> None:
    """Each WebAssembly runtime is whole (WebAssembly.validate in Node.js, which the build has): a damaged copy in
    node_modules (a cut-off download) would otherwise ship, and the page would fail on every visitor's machine."""
    node = shutil.which("node")
    if not node or not paths:
        return
    script = ("const fs = require('fs'); const bad = process.argv.slice(1).filter("
              "(p) => !WebAssembly.validate(fs.readFileSync(p))); console.log(JSON.stringify(bad));")
    done = subprocess.run([node, "-e", script, *map(str, paths)], capture_output=True, text=True)
    bad = json.loads(done.stdout or "[]") if done.returncode == 0 else []
    if bad:
        raise BuildError(f"damaged WebAssembly runtime(s): {', '.join(Path(p).name for p in bad)}; reinstall the npm "
                         "packages (`rm -rf node_modules && npm ci`)")


def precompiled_stdlib(pyodide_dir: Path) -> Path:
    """Pyodide's standard library as bytecode instead of source (scripts/precompile_stdlib.mjs): Python then
    starts about 1.2 s sooner in the page (docs/BENCHMARKS.md section 5). Cached by input hashes."""
    source = pyodide_dir / "python_stdlib.zip"
    key = hashlib.sha256(source.read_bytes() + PRECOMPILE_SCRIPT.read_bytes()).hexdigest()[:16]
    cached = STDLIB_CACHE / f"python_stdlib.{key}.zip"
    if cached.exists():
        step(f"vendor/pyodide: precompiled standard library (cached {cached.name})")
        return cached
    node = shutil.which("node")
    if not node:
        raise BuildError("Node.js is needed to precompile Pyodide's standard library (it also runs npm)")
    STDLIB_CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    done = subprocess.run([node, str(PRECOMPILE_SCRIPT), str(pyodide_dir), str(source), str(partial)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"precompiling Pyodide's standard library failed:\n{done.stderr[-2000:]}")
    partial.replace(cached)
    step(f"vendor/pyodide: {done.stdout.strip()}")
    return cached


# ---------------------------------------------------------------- site and models


def copy_site(out: Path) -> list[str]:
    """Copies site/ (pages, Python modules, licences); returns the Python files the page loads."""
    if not (SITE / "index.html").exists():
        raise BuildError(f"{SITE / 'index.html'} is missing")
    shutil.copytree(SITE, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*SITE_SKIP, "*.pyc"))
    py_files = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.py")
                      if not SITE_SKIP.intersection(p.relative_to(SITE).parts) and p.name != "main.py")
    step(f"site: {sum(1 for _ in SITE.rglob('*') if _.is_file())} files ({len(py_files)} Python modules)")
    return py_files


def write_licences_page(out: Path) -> None:
    """licences.html: NOTICE.md (the licences and credits, kept as the plain-text notice too) as a page of the site;
    a file it names that the site holds (`licenses/MIT-onnxruntime.txt`, `vendor/pyodide/`) becomes a link to it."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render((out / "NOTICE.md").read_text(encoding="utf-8"))

    def link(match: re.Match) -> str:
        path = html.unescape(match.group(1))
        return f'<a href="{match.group(1)}">{match.group(0)}</a>' if (out / path).exists() else match.group(0)

    body = re.sub(r"<code>([\w./-]+)</code>", link, body)
    (out / "licences.html").write_text(LICENCES_PAGE.format(body=body), encoding="utf-8")


LICENCES_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Licences and credits — Eye state</title>
  <link rel="icon" href="favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="style.css">
</head>
<body>
  <main class="notice">
    <p><a href="./">← Back to the page</a></p>
{body}
  </main>
</body>
</html>
"""


def copy_models(out: Path, models_dir: Path = MODELS) -> dict:
    """Every model the page runs, with an RGBA uint8 input (fuse_rgba_input); returns
    {"files": {key: dist-relative path}, "inputs": {model: input spec}}."""
    target = out / "models"
    target.mkdir(parents=True, exist_ok=True)
    for name in EYE_MODELS:
        if not (models_dir / name).exists():
            raise BuildError(f"{models_dir / name} is missing. Make it with `python -m pipeline.export` "
                             f"(or `python build.py --retrain` to train, export and quantize).")
    shutil.copy2(models_dir / "eye_state.json", target / "eye_state.json")

    try:
        from pipeline.face_models import ensure_face_models
    except ImportError as exc:
        raise BuildError(f"cannot import pipeline.face_models ({exc}); run `pip install -e .` first") from exc
    step("face models (MediaPipe TFLite -> ONNX, cached in .cache/face_models)")
    paths = ensure_face_models(FACE_CACHE)
    shutil.copy2(paths["json"], target / Path(paths["json"]).name)
    licences = out / "licenses"
    licences.mkdir(exist_ok=True)
    for key in ("license", "notice"):
        shutil.copy2(paths[key], licences / Path(paths[key]).name)

    specs = model_input_specs(Path(paths["json"]), models_dir / "eye_state.json")
    sources = {name: Path(paths[name]) for name in ("face_detection", "face_landmark", "iris_landmark")}
    sources["eye_state"] = models_dir / "eye_state.onnx"
    for name in OPTIONAL_EYE_MODELS:
        if (models_dir / name).exists():
            sources["eye_state_int8"] = models_dir / name
    files = {}
    for key, src in sources.items():
        dst = target / (src.name[:-len(".onnx")] + ".rgba.onnx")
        fuse_rgba_input(src, dst, specs["eye_state" if key.startswith("eye_state") else key])
        files[key] = "models/" + dst.name
    step("models (RGBA input): " + ", ".join(Path(f).name for f in files.values()))
    return {"files": files, "inputs": specs, "sources": {k: v.name for k, v in sources.items()}}


def input_spec(channels: str, layout: str, scale: float, offset: float) -> dict:
    """How a model's float input is made from pixels: value = channel_mix(R, G, B) * scale + offset."""
    if channels not in ("rgb", "gray") or layout not in ("NHWC", "NCHW"):
        raise BuildError(f"unsupported model input: channels={channels!r} layout={layout!r}")
    return {"channels": channels, "layout": layout, "scale": scale, "offset": offset}


def fuse_rgba_input(src: Path, dst: Path, spec: dict) -> None:
    """Writes a copy of `src` whose input is the canvas' RGBA bytes, uint8 [N,H,W,4].

    Prepended nodes: Cast -> MatMul with [4,C] channel weights (RGB: identity without alpha; gray:
    BT.601 from eyecore.preprocess) -> * scale + offset -> (NCHW: Transpose). The page then needs one
    ort-web call per model and no per-pixel Python (too slow in Pyodide: ~4 ms per 48x48 eye crop,
    ~80 ms per 192x192 face crop, measured). tests/test_build.py checks the arithmetic against
    eyecore.preprocess.rgba_to_input and the original models."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if str(SITE) not in sys.path:  # eyecore without `pip install -e .`
        sys.path.insert(0, str(SITE))
    from eyecore.preprocess import GRAY_WEIGHTS

    try:
        model = onnx.load(str(src))
        onnx.checker.check_model(model)
    except Exception as exc:  # a cut-off or foreign file: protobuf's DecodeError, the checker's ValidationError
        raise BuildError(f"{src} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]}); export it "
                         "again (`python -m pipeline.export`, then `python -m pipeline.quantize` for the int8 "
                         "one)") from None
    graph = model.graph
    if len(graph.input) != 1:
        raise BuildError(f"{src.name}: expected one input, found {len(graph.input)}")
    original = graph.input[0]
    dims = [d.dim_param or d.dim_value for d in original.type.tensor_type.shape.dim]
    n, h, w, c = dims if spec["layout"] == "NHWC" else (dims[0], dims[2], dims[3], dims[1])
    want_c = 3 if spec["channels"] == "rgb" else 1
    if c != want_c:
        raise BuildError(f"{src.name}: input {dims} has {c} channels, the spec says {spec['channels']}")
    if spec["channels"] == "rgb":
        weights = np.eye(4, 3, dtype=np.float32)
    else:
        weights = np.array([[*GRAY_WEIGHTS, 0.0]], dtype=np.float32).T
    prefix = "rgba_front_"
    graph.initializer.extend([
        numpy_helper.from_array(weights, prefix + "weights"),
        numpy_helper.from_array(np.array([spec["scale"]], dtype=np.float32), prefix + "scale"),
        numpy_helper.from_array(np.array([spec["offset"]], dtype=np.float32), prefix + "offset"),
    ])
    nhwc = original.name if spec["layout"] == "NHWC" else prefix + "nhwc"
    nodes = [helper.make_node("Cast", ["rgba"], [prefix + "f"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", [prefix + "f", prefix + "weights"], [prefix + "mixed"]),
             helper.make_node("Mul", [prefix + "mixed", prefix + "scale"], [prefix + "scaled"]),
             helper.make_node("Add", [prefix + "scaled", prefix + "offset"], [nhwc])]
    if spec["layout"] == "NCHW":
        nodes.append(helper.make_node("Transpose", [nhwc], [original.name], perm=[0, 3, 1, 2]))
    for node in reversed(nodes):
        graph.node.insert(0, node)
    graph.input.remove(original)
    graph.input.insert(0, helper.make_tensor_value_info("rgba", TensorProto.UINT8, [n, h, w, 4]))
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))


def model_input_specs(face_json: Path, eye_json: Path) -> dict:
    """Input spec of every model, from face_models.json (range) and eye_state.json (mean/std)."""
    specs = {}
    for name, entry in json.loads(face_json.read_text())["models"].items():
        lo, hi = entry["input"]["range"]
        specs[name] = input_spec(entry["input"]["channels"], entry["input"]["layout"], (hi - lo) / 255.0, lo)
    try:
        pre = json.loads(eye_json.read_text())["preprocess"]
        channels, mean, std = pre["channels"], float(pre["mean"]), float(pre["std"])
        if channels not in (1, 3) or not std > 0:
            raise ValueError(f"channels {channels!r} and std {std!r}: expected 1 or 3, and std above 0")
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise BuildError(f"{eye_json} is not a valid eye model description ({type(exc).__name__}: {exc}); it is "
                         "written with the model by `python -m pipeline.export`") from None
    specs["eye_state"] = input_spec("gray" if channels == 1 else "rgb", "NCHW", 1.0 / (255.0 * std), -mean / std)
    return specs


def write_page_config(out: Path, shipped: dict) -> None:
    """Which model files the page loads and how their inputs are made; the int8 classifier is the
    default only where it was measured faster in the page (PREFER_INT8), `?eye=fp32|int8` overrides."""
    files = shipped["files"]
    eye_models = {"fp32": files["eye_state"]}
    if "eye_state_int8" in files:
        eye_models["int8"] = files["eye_state_int8"]
    config = {
        "models": {name: files[name] for name in ("face_detection", "face_landmark", "iris_landmark")},
        "eye_models": eye_models,
        "eye_model_json": "models/eye_state.json",
        "inputs": shipped["inputs"],
    }
    choice = "int8" if PREFER_INT8 and "int8" in eye_models else "fp32"
    config["models"]["eye_state"] = eye_models[choice]
    # One run of each model on blank pixels while Pyodide still boots: the first ort-web run of a session
    # is several times slower than later ones, and would otherwise land on the first camera frame.
    config["warmup_shapes"] = {name: rgba_input_shape(out / path, batch=2 if name == "eye_state" else 1)
                               for name, path in config["models"].items()}
    config["eye_model_source"] = shipped["sources"]["eye_state_int8" if choice == "int8" else "eye_state"]
    (out / "page_config.json").write_text(json.dumps(config, indent=1))


def rgba_input_shape(path: Path, batch: int) -> list:
    """[batch, H, W, 4] of a model made by fuse_rgba_input."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value for d in dims]
    if len(shape) != 4 or shape[3] != 4 or not shape[1] or not shape[2]:
        raise BuildError(f"{path}: expected an RGBA input [N,H,W,4] with fixed H and W, got {shape}")
    return [batch, shape[1], shape[2], 4]


def write_pyscript_config(out: Path, py_files: list[str]) -> None:
    """PyScript config: self-hosted interpreter, our modules into the Pyodide FS, ort as a JS module."""
    config = {
        "interpreter": "./vendor/pyodide/pyodide.mjs",
        "files": {f"./{name}": f"./{name}" for name in py_files},
        "js_modules": {"main": {"./vendor/ort/ort.wasm.min.mjs": "ort"}},
    }
    (out / "pyscript.json").write_text(json.dumps(config, indent=1))


def write_manifest(out: Path) -> dict:
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.name != "manifest.json":
            data = path.read_bytes()
            files[path.relative_to(out).as_posix()] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"runtimes": RUNTIME_VERSIONS, "files": files,
                "total_bytes": sum(f["bytes"] for f in files.values())}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


SERVICE_WORKER = "sw.js"
SW_BUILD_LINE = re.compile(r"^const BUILD = .*;$", re.MULTILINE)


def write_service_worker(out: Path, manifest: dict) -> str:
    """Fills in sw.js's BUILD line: every file of dist/ (what the offline copy holds) and a version made from their
    hashes and the worker's own code, so that any change to the site installs a new copy (in a cache of its own) and
    deletes the old one. Returns the version."""
    path = out / SERVICE_WORKER
    files = {name: entry for name, entry in manifest["files"].items() if name != SERVICE_WORKER}
    source = path.read_text(encoding="utf-8")
    if len(SW_BUILD_LINE.findall(source)) != 1:
        raise BuildError(f"{SITE / SERVICE_WORKER}: expected one line `const BUILD = {{...}};` for build.py to fill in")
    code = SW_BUILD_LINE.sub("const BUILD = null;", source)
    version = hashlib.sha256(json.dumps({"files": {n: e["sha256"] for n, e in files.items()}, "worker": code},
                                        sort_keys=True).encode()).hexdigest()[:16]
    build_line = "const BUILD = " + json.dumps({"version": version, "files": sorted(files),
                                                "bytes": sum(e["bytes"] for e in files.values())}) + ";"
    path.write_text(SW_BUILD_LINE.sub(lambda _: build_line, source), encoding="utf-8")
    return version


def shipped_recipe(models_dir: Path = MODELS) -> list[str]:
    """pipeline.train arguments of the shipped model (models/model_card.json's training command, without its
    --out-dir), so that --retrain reproduces what ships; the trainer's defaults when there is no card."""
    card = models_dir / "model_card.json"
    if not card.exists():
        meta = models_dir / "eye_state.json"
        model = json.loads(meta.read_text()).get("model") if meta.exists() else None
        return ["--model", model] if model else []
    try:
        words = shlex.split(json.loads(card.read_text())["training"]["command"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildError(f"{card}: cannot read the training command of the shipped model ({type(exc).__name__}: "
                         f"{exc}); expected {{\"training\": {{\"command\": \"python -m pipeline.train ...\"}}}}") from None
    if words[:3] != ["python", "-m", "pipeline.train"]:
        raise BuildError(f"{card}: training.command should start with `python -m pipeline.train`, got {words[:3]}")
    args = words[3:]
    if "--out-dir" in args:
        i = args.index("--out-dir")
        del args[i:i + 2]
    return args


def retrain(models_dir: Path = MODELS) -> None:
    """train (the shipped recipe) -> export -> quantize -> test evaluation -> webcam replay -> model card, each by
    its own CLI (their defaults and checks apply); the new checkpoint becomes models/eye_state.pth."""
    weights = ROOT / "weights" / "retrain"
    mrl = ROOT.parent / "shared" / "data" / "mrl" / "mrlEyes_2018_01_dev.zip"
    videos = sorted((ROOT.parent / "shared" / "data" / "videos" / "focus").glob("*.avi"))
    results = ROOT / "docs" / "results"
    commands = [
        ["-m", "pipeline.train", *shipped_recipe(models_dir), "--out-dir", str(weights), "--overwrite"],
        ["-m", "pipeline.export", "--weights", str(models_dir / "eye_state.pth"), "--out", str(models_dir / "eye_state.onnx")],
        ["-m", "pipeline.quantize", "--model", str(models_dir / "eye_state.onnx"), "--calib", str(mrl),
         "--out", str(models_dir / "eye_state.int8.onnx")],
        ["-m", "pipeline.evaluate", "--weights", str(models_dir / "eye_state.pth"), "--batch-size", "64",
         "--json", str(results / "eval_test_fp32.json")],
    ]
    if videos:  # the webcam reality check, when the shared videos are there
        commands.append(["-m", "pipeline.video", *map(str, videos), "--json", str(results / "video_focus.json")])
    commands.append([str(ROOT / "scripts" / "model_card.py"), "--run", str(weights), "--models", str(models_dir)])
    for args in commands:
        step("--retrain: python " + " ".join(args))
        done = subprocess.run([sys.executable, *args], cwd=ROOT)
        if done.returncode != 0:
            raise BuildError(f"`python {' '.join(args[:2])}` failed with exit code {done.returncode} "
                             f"(--retrain needs `pip install -e .[train]` and the MRL data at {mrl})")
        if args[:2] == ["-m", "pipeline.train"]:  # the new weights become the shipped checkpoint
            shutil.copyfile(weights / "best.pth", models_dir / "eye_state.pth")
    step("--retrain: update the prose in models/MODEL_CARD.md from models/model_card.json")


def check_out_folder(out: Path) -> None:
    """The folder a build replaces must be an earlier build (its manifest.json, written last) or empty: --out names
    a folder that is deleted, and a slip (`--out site`, `--out .`) must not take the sources with it."""
    out = out.resolve()
    for source in (ROOT, SITE, MODELS, NODE_MODULES, ROOT / ".git"):
        if out == source or out in source.parents or (source != ROOT and source in out.parents):
            raise BuildError(f"--out {out} would replace {source} or a folder around it; give a folder of its "
                             "own (default dist/)")
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out} is a file; expected a folder for the site")
    if out == (ROOT / "dist").resolve():  # the default: the build's own (gitignored), also one a failed build left
        return
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise BuildError(f"--out {out} holds files but no manifest.json, so it is not an earlier build: a build "
                         "replaces the whole folder; give a new or empty one")


def check_model_card(models_dir: Path) -> None:
    """A note when a shipped model file is not the one models/model_card.json measured: its numbers are not this
    model's (a file exported by hand, or damaged)."""
    card = models_dir / "model_card.json"
    try:
        files = json.loads(card.read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return  # no card (a model of one's own) or not one to compare with
    for name, facts in files.items():
        path = models_dir / name
        if isinstance(facts, dict) and path.is_file() and facts.get("sha256") not in (
                None, hashlib.sha256(path.read_bytes()).hexdigest()):
            step(f"note: {path} is not the file {card.name} describes (sha256 differs): the model card's numbers "
                 "are not this model's (`python scripts/model_card.py` updates it)")


def build(out: Path = ROOT / "dist", models_dir: Path = MODELS, skip_npm: bool = False) -> dict:
    """Builds into a folder beside `out` and puts it in place only when complete: a failed or interrupted build
    leaves the earlier site as it was."""
    started = time.perf_counter()
    check_out_folder(out)
    if not skip_npm:
        ensure_npm_runtimes()
    check_model_card(models_dir)
    staging, old = out.parent / f".{out.name}.building", out.parent / f".{out.name}.old"
    try:
        if old.exists() and not out.exists():  # interrupted between the two renames: the earlier site comes back
            old.rename(out)
        for leftover in (staging, old):  # left by an interrupted build
            if leftover.exists():
                shutil.rmtree(leftover)
        staging.mkdir(parents=True)
        copy_runtimes(staging)
        py_files = copy_site(staging)
        shipped = copy_models(staging, models_dir)
        write_licences_page(staging)  # after the models: it links the licence files they bring
        write_page_config(staging, shipped)
        write_pyscript_config(staging, py_files)
        write_service_worker(staging, write_manifest(staging))
        manifest = write_manifest(staging)
        # the earlier site goes aside, not away, until the new one is in its place
        if out.exists():
            out.rename(old)
        try:
            staging.rename(out)
        except OSError:
            if old.exists() and not out.exists():
                old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise BuildError(f"cannot build the site in {out} ({exc})") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    step(f"dist ready: {len(manifest['files'])} files, {manifest['total_bytes'] / 1e6:.1f} MB "
         f"in {time.perf_counter() - started:.1f} s -> {out}")
    return manifest


# ---------------------------------------------------------------- serving


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with exact MIME types and cross-origin isolation headers (ort-web threads)."""

    extensions_map = MIME_TYPES

    isolation = True

    def end_headers(self):
        if self.isolation:
            for key, value in ISOLATION_HEADERS.items():
                self.send_header(key, value)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_request(self, code="-", size="-"):  # quiet: only failed requests
        if str(getattr(code, "value", code)).startswith(("4", "5")):
            super().log_request(code, size)


class SiteServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # the browser closed a connection it no longer needed (page closed, video seek)
        super().handle_error(request, client_address)


def make_server(directory: Path, port: int = 8000, host: str = "127.0.0.1",
                isolation: bool = True) -> http.server.ThreadingHTTPServer:
    """isolation=False serves like GitHub Pages does (no COOP/COEP headers)."""
    handler = type("Handler", (SiteHandler,), {"isolation": isolation})
    return SiteServer((host, port), functools.partial(handler, directory=str(directory)))


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text}: expected a port number from 0 to 65535")
    return port


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--models", type=Path, default=MODELS,
                        help="folder with eye_state.onnx, eye_state.json (and eye_state.int8.onnx); default models/")
    parser.add_argument("--serve", action="store_true", help="serve the built site after building")
    parser.add_argument("--port", type=port_number, default=8000, help="0: any free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--retrain", action="store_true", help="train, export and quantize before building")
    parser.add_argument("--no-build", action="store_true", help="with --serve: serve the existing dist/")
    args = parser.parse_args(argv)
    try:
        if args.retrain:
            retrain(args.models)
        if not args.no_build:
            build(args.out, args.models)
        elif not (args.out / "manifest.json").exists():  # written last: a finished build
            raise BuildError(f"{args.out} holds no finished build (no manifest.json); run `python build.py` first")
        if args.serve:
            try:
                server = make_server(args.out, args.port, args.host)
            except OSError as exc:  # a port in use, a host name that does not resolve
                raise BuildError(f"cannot serve on {args.host}:{args.port} ({exc.strerror or exc}); is another "
                                 "server running there? Pick another with --port N (0: any free one)") from None
    except BuildError as exc:
        print(f"[build] error: {exc}", file=sys.stderr)
        return 1
    if args.serve:
        step(f"serving {args.out} at http://{args.host}:{server.server_port}/ (Ctrl+C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
