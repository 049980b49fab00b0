"""build.py: what dist/ holds, the manifest, the RGBA model front-end arithmetic, the server."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import urllib.request
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import build  # noqa: E402
from browser_utils import serve  # noqa: E402
from eyecore.preprocess import DEFAULT_SPEC, rgba_to_input  # noqa: E402

ort = pytest.importorskip("onnxruntime", reason="onnxruntime (pip install -e .[train]) runs the models here")


def tiny_eye_model(path: Path) -> None:
    """A real (random-weight) classifier with the export contract: input [N,1,48,48] -> logits [N,2]."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.normal(size=(4, 2)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 48, 48])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])], [w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    meta = {"preprocess": json.loads(DEFAULT_SPEC.to_json()), "classes": ["closed", "open"], "model": "tiny-test",
            "inputs": {"input": ["batch", 1, 48, 48]}, "outputs": {"logits": ["batch", 2]}}
    (path.parent / "eye_state.json").write_text(json.dumps(meta))


def identity_model(path: Path, dims: list) -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["out"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def run(path: Path, feed: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: feed})[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if build.node_modules_stale() and not shutil.which("npm"):
        pytest.skip("node_modules is not installed and npm is missing (install Node.js, or run scripts/test.sh)")
    models = tmp_path_factory.mktemp("models")
    tiny_eye_model(models / "eye_state.onnx")
    out = tmp_path_factory.mktemp("site") / "dist"
    manifest = build.build(out, models_dir=models)
    return out, manifest, models


def test_manifest_lists_every_file_with_size_and_sha256(built):
    out, manifest, _ = built
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_only_the_runtime_files_the_page_loads_are_vendored(built):
    out, _, _ = built
    assert sorted(p.name for p in (out / "vendor/pyodide").iterdir()) == sorted(build.PYODIDE_FILES)
    assert sorted(p.name for p in (out / "vendor/ort").iterdir()) == sorted(build.ORT_FILES)
    pyscript = {p.name for p in (out / "vendor/pyscript").iterdir()}
    assert {"core.js", "core.css", "LICENSE"} <= pyscript
    assert not [n for n in pyscript if n.endswith(".map") or n.startswith(("codemirror", "xterm"))]
    assert set(build.pyscript_chunks(out / "vendor/pyscript")) == pyscript - {"core.css", "LICENSE"}


def test_pyodide_stdlib_ships_as_bytecode_that_pyodide_imports(built):
    """Each stdlib source is replaced by an unchecked-hash .pyc of Pyodide's own CPython, and that zip boots."""
    import struct
    import subprocess
    import zipfile

    out, _, _ = built
    with zipfile.ZipFile(build.NODE_MODULES / "pyodide/python_stdlib.zip") as z:
        sources = {n for n in z.namelist() if n.endswith(".py")}
    with zipfile.ZipFile(out / "vendor/pyodide/python_stdlib.zip") as z:
        names = set(z.namelist())
        header = z.read("asyncio/__init__.pyc")[:16]
    assert sources and {n + "c" for n in sources} == {n for n in names if n.endswith(".pyc")}
    assert not [n for n in names if n.endswith(".py")]
    assert struct.unpack("<I", header[4:8])[0] == 0b01  # PEP 552 flags: hash-based, source not checked
    script = ("import { loadPyodide } from '" + (out / "vendor/pyodide/pyodide.mjs").as_uri() + "';"
              "const py = await loadPyodide({indexURL: '" + str(out / "vendor/pyodide") + "/'});"
              "console.log(py.runPython('import asyncio, email.message, json; "
              "json.dumps([asyncio.__spec__.origin, email.message.Message.__name__])'));")
    done = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    origin, cls = json.loads(done.stdout.strip().splitlines()[-1])
    assert origin.endswith("python314.zip/asyncio/__init__.pyc") and cls == "Message"


def test_service_worker_saves_every_file_and_gets_a_new_version_when_any_file_changes(built, tmp_path):
    out, manifest, _ = built
    filled = re.findall(r"^const BUILD = (.*);$", (out / "sw.js").read_text(), re.MULTILINE)
    assert len(filled) == 1
    saved = json.loads(filled[0])
    assert set(saved["files"]) == set(manifest["files"]) - {"sw.js"}  # manifest.json is not in it either
    assert saved["bytes"] == sum(manifest["files"][name]["bytes"] for name in saved["files"])
    copy = tmp_path / "dist"
    shutil.copytree(out, copy)
    assert build.write_service_worker(copy, build.write_manifest(copy)) == saved["version"]  # same files
    (copy / "models" / "eye_state.json").write_text("{}")
    changed_file = build.write_service_worker(copy, build.write_manifest(copy))
    assert changed_file != saved["version"]
    with open(copy / "sw.js", "a") as worker:  # a change to the worker alone gets a cache of its own too
        worker.write("// changed\n")
    assert build.write_service_worker(copy, build.write_manifest(copy)) not in (saved["version"], changed_file)


def test_page_is_self_hosted(built):
    out, _, _ = built
    config = json.loads((out / "pyscript.json").read_text())
    assert config["interpreter"] == "./vendor/pyodide/pyodide.mjs"
    assert (out / config["interpreter"]).is_file()
    modules = {p.relative_to(ROOT / "site").as_posix() for p in (ROOT / "site").rglob("*.py")
               if "__pycache__" not in p.parts and p.name != "main.py"}
    assert {k.removeprefix("./") for k in config["files"]} == modules
    for target in config["files"].values():
        assert (out / target).is_file()
    for page_file in ["index.html", "main.py", "page_app.py", "page_view.py", "page_settings.py", "page_record.py",
                      "web_runtime.py", "ticker.js", "offline.js", "sw.js", "app.webmanifest", "style.css"]:
        text = (out / page_file).read_text()
        assert "http://" not in text and "https://" not in text, f"{page_file} names another origin"


def test_page_config_points_at_shipped_models(built):
    out, _, _ = built
    config = json.loads((out / "page_config.json").read_text())
    for name in ("face_detection", "face_landmark", "iris_landmark", "eye_state"):
        assert (out / config["models"][name]).is_file()
        assert name in config["inputs"]
    assert config["inputs"]["eye_state"] == {"channels": "gray", "layout": "NCHW", "scale": pytest.approx(2 / 255),
                                             "offset": pytest.approx(-1.0)}
    assert (out / "NOTICE.md").is_file() and (out / "licenses/NOTICE-mediapipe-models.txt").is_file()
    # warm-up inputs the page feeds each session once while Pyodide boots: each model's own RGBA shape
    assert config["warmup_shapes"] == {"face_detection": [1, 128, 128, 4], "face_landmark": [1, 192, 192, 4],
                                       "iris_landmark": [1, 64, 64, 4], "eye_state": [2, 48, 48, 4]}


def test_the_licences_page_is_the_notice_as_html_with_its_files_linked(built):
    """index.html links licences.html, rendered from NOTICE.md: a readable table (not Markdown source) whose licence
    files on this site are links, loading nothing from another origin."""
    out, _, _ = built
    assert 'href="licences.html"' in (out / "index.html").read_text()
    page = (out / "licences.html").read_text()
    assert "<table>" in page and "| --- |" not in page and "<h1>Licences and credits</h1>" in page
    linked = re.findall(r'<a href="([^"]+)"><code>', page)
    assert "licenses/MIT-onnxruntime.txt" in linked and "licenses/NOTICE-mediapipe-models.txt" in linked
    assert all((out / path).exists() for path in linked)
    assert not re.search(r'<(link|script|img)[^>]+(src|href)="https?://', page)  # only links out, no loads


def test_gray_front_end_equals_rgba_to_input(tmp_path):
    """The page's eye-classifier input (RGBA -> fused graph) is the one preprocessing definition."""
    identity_model(tmp_path / "id.onnx", ["batch", 1, 48, 48])
    spec = build.input_spec("gray", "NCHW", 1 / (255 * DEFAULT_SPEC.std), -DEFAULT_SPEC.mean / DEFAULT_SPEC.std)
    build.fuse_rgba_input(tmp_path / "id.onnx", tmp_path / "id.rgba.onnx", spec)
    rgba = np.random.default_rng(1).integers(0, 256, size=(2, 48, 48, 4), dtype=np.uint8)
    got = run(tmp_path / "id.rgba.onnx", rgba)
    assert got.shape == (2, 1, 48, 48)
    for i in range(2):
        want = rgba_to_input(rgba[i].tobytes(), 48, 48, DEFAULT_SPEC)
        np.testing.assert_allclose(got[i].ravel(), want, atol=2e-6)


def test_rgb_front_end_scales_each_channel(tmp_path):
    identity_model(tmp_path / "id.onnx", [1, 16, 8, 3])
    build.fuse_rgba_input(tmp_path / "id.onnx", tmp_path / "id.rgba.onnx", build.input_spec("rgb", "NHWC", 2 / 255, -1.0))
    rgba = np.random.default_rng(2).integers(0, 256, size=(1, 16, 8, 4), dtype=np.uint8)
    got = run(tmp_path / "id.rgba.onnx", rgba)
    np.testing.assert_allclose(got, rgba[..., :3].astype(np.float32) * (2 / 255) - 1.0, atol=1e-6)


def test_fused_models_equal_the_originals(built):
    """Shipped RGBA models give the same outputs as the originals on the converted inputs."""
    out, _, models = built
    config = json.loads((out / "page_config.json").read_text())
    originals = {"face_landmark": ROOT / ".cache/face_models/face_landmark.onnx",
                 "face_detection": ROOT / ".cache/face_models/face_detection.onnx",
                 "eye_state": models / "eye_state.onnx"}
    rng = np.random.default_rng(3)
    for name, original in originals.items():
        spec = config["inputs"][name]
        sess = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"])
        dims = [d if isinstance(d, int) else 2 for d in sess.get_inputs()[0].shape]
        n, h, w = (dims[0], dims[1], dims[2]) if spec["layout"] == "NHWC" else (dims[0], dims[2], dims[3])
        rgba = rng.integers(0, 256, size=(n, h, w, 4), dtype=np.uint8)
        pixels = rgba[..., :3].astype(np.float32)
        if spec["channels"] == "gray":
            pixels = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]
        x = pixels * np.float32(spec["scale"]) + np.float32(spec["offset"])
        if spec["layout"] == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        want = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x)})
        fused = ort.InferenceSession(str(out / config["models"][name]), providers=["CPUExecutionProvider"])
        got = fused.run(None, {"rgba": rgba})
        assert [o.name for o in fused.get_outputs()] == [o.name for o in sess.get_outputs()]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(b).max())))


def test_missing_eye_model_says_what_to_run(tmp_path):
    with pytest.raises(build.BuildError, match=r"eye_state\.onnx is missing.*python -m pipeline\.export"):
        build.build(tmp_path / "dist", models_dir=tmp_path, skip_npm=True)


def test_a_build_refuses_an_out_folder_that_is_not_a_site_build(tmp_path):
    """--out names a folder the build replaces whole: never the sources, a file, or a folder of other things."""
    # the check alone for the repository's own folders: a regression must not get to delete them here
    for out, said in ((ROOT / "site", "would replace"), (ROOT / "models", "would replace"), (ROOT, "would replace"),
                      (ROOT / "site" / "dist", "would replace"), (ROOT / "README.md", "is a file")):
        with pytest.raises(build.BuildError, match=said):
            build.check_out_folder(out)
    (tmp_path / "holiday.jpg").write_bytes(b"not a site")
    with pytest.raises(build.BuildError, match="holds files but no manifest.json"):
        build.build(tmp_path, skip_npm=True)
    assert (tmp_path / "holiday.jpg").exists() and (ROOT / "site" / "index.html").exists()


def test_a_failed_build_leaves_the_site_before_it_and_says_what_is_wrong(tmp_path, capsys):
    """A model file cut off, its description unreadable: a message, and the earlier build still served whole (the
    new one is made beside it and put in place only when complete; one an interrupted build left aside comes back). A model that is not the file its model card
    measured gets a note."""
    if build.node_modules_stale():
        pytest.skip("node_modules is not installed (run scripts/test.sh)")
    out = tmp_path / "dist"
    aside = tmp_path / ".dist.old"  # as an interrupted build left it: put aside, the new one not yet in its place
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    (aside / "index.html").write_text("the earlier build")
    models = tmp_path / "models"
    models.mkdir()
    tiny_eye_model(models / "eye_state.onnx")
    good = (models / "eye_state.onnx").read_bytes()
    (models / "model_card.json").write_text(json.dumps({"files": {"eye_state.onnx": {"sha256": "0" * 64}}}))
    (models / "eye_state.onnx").write_bytes(good[:len(good) // 2])
    with pytest.raises(build.BuildError, match=r"eye_state\.onnx is not a readable ONNX model.*pipeline\.export"):
        build.build(out, models_dir=models, skip_npm=True)
    assert "is not the file model_card.json describes" in capsys.readouterr().out
    (models / "eye_state.onnx").write_bytes(good)
    (models / "eye_state.json").write_text('{"preprocess": {"channels": 1, "mean": 0.5, "std": 0}}')
    with pytest.raises(build.BuildError, match=r"eye_state\.json is not a valid eye model description"):
        build.build(out, models_dir=models, skip_npm=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "models"]  # no half-built folder left
    assert (out / "index.html").read_text() == "the earlier build"
    assert build.main(["--out", str(tmp_path / "never-built"), "--serve", "--no-build"]) == 1
    assert "no finished build" in capsys.readouterr().err


def test_serve_says_when_the_port_is_taken_or_not_a_port(built, capsys):
    out, _, _ = built
    with serve(out) as base:  # holds a port
        port = base.rsplit(":", 1)[1].strip("/")
        assert build.main(["--out", str(out), "--serve", "--no-build", "--port", port]) == 1
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        build.main(["--serve", "--port", "99999"])
    assert stop.value.code == 2 and "expected a port number from 0 to 65535" in capsys.readouterr().err


def test_runtime_versions_are_pinned_in_package_files():
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert package["dependencies"] == build.RUNTIME_VERSIONS
    for name, version in build.RUNTIME_VERSIONS.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_server_sends_mime_types_and_isolation_headers(built):
    out, _, _ = built
    expected = {"vendor/pyodide/pyodide.mjs": "text/javascript", "vendor/ort/ort-wasm-simd-threaded.wasm": "application/wasm",
                "models/eye_state.rgba.onnx": "application/octet-stream", "vendor/pyodide/python_stdlib.zip": "application/octet-stream",
                "web_runtime.py": "text/plain", "index.html": "text/html", "vendor/pyscript/core.js": "text/javascript"}
    with serve(out) as base:
        for path, mime in expected.items():
            with urllib.request.urlopen(base + path) as response:
                assert response.headers["Content-Type"].split(";")[0] == mime, path
                assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"


def test_retrain_reproduces_the_shipped_recipe_from_the_model_card(tmp_path):
    """--retrain trains with the shipped model's recorded recipe (models/model_card.json), not trainer defaults."""
    from pipeline.train import build_parser

    recipe = build.shipped_recipe()
    card = json.loads((ROOT / "models" / "model_card.json").read_text())
    args = build_parser().parse_args(recipe)
    assert args.model == card["architecture"]
    assert args.final_fit == card["training"]["final_fit"]
    assert args.epochs == card["training"]["epochs"]
    assert "--out-dir" not in recipe
    (tmp_path / "model_card.json").write_text(json.dumps({"training": {"command": "python train.py --epochs 3"}}))
    with pytest.raises(build.BuildError, match="pipeline.train"):
        build.shipped_recipe(tmp_path)


def test_a_damaged_webassembly_runtime_is_refused(tmp_path):
    """A cut-off pyodide.asm.wasm in node_modules would ship and fail on every visitor's machine."""
    if not shutil.which("node"):
        pytest.skip("Node.js is not installed (scripts/test.sh installs it)")
    good = ROOT / "node_modules" / "pyodide" / "pyodide.asm.wasm"
    if not good.exists():
        pytest.skip("node_modules is not installed (run scripts/test.sh)")
    cut = tmp_path / "pyodide.asm.wasm"
    cut.write_bytes(good.read_bytes()[:1000])
    build.check_wasm([good])
    with pytest.raises(build.BuildError, match="damaged WebAssembly runtime.*pyodide.asm.wasm.*npm ci"):
        build.check_wasm([good, cut])
