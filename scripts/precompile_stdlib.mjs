// Pyodide's python_stdlib.zip holds .py sources, so every page load compiles the ~200 standard-library
// modules Python imports at start-up, in WebAssembly, on the main thread (about 1.2 s of a 4 s start here).
// This replaces each source with its bytecode, compiled by the same Pyodide (same CPython version and
// magic number), as unchecked-hash .pyc files (PEP 552: valid without the source, which is left out).
//
//   node scripts/precompile_stdlib.mjs PYODIDE_DIR IN_ZIP OUT_ZIP
//
// Called by build.py, which caches the result. A file that does not compile stays as source.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [pyodideDir, inZip, outZip] = process.argv.slice(2);
if (!outZip) {
  console.error("usage: node precompile_stdlib.mjs PYODIDE_DIR IN_ZIP OUT_ZIP");
  process.exit(2);
}
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
const pyodide = await loadPyodide({ indexURL: path.resolve(pyodideDir) + "/" });
pyodide.FS.writeFile("/tmp/in.zip", fs.readFileSync(inZip));
const report = pyodide.runPython(`
import py_compile, sys, zipfile

archive = f"/lib/python{sys.version_info.major}{sys.version_info.minor}.zip"  # where Pyodide mounts it
compiled, kept = 0, []
with zipfile.ZipFile("/tmp/in.zip") as zin, zipfile.ZipFile("/tmp/out.zip", "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        data = zin.read(info)
        if info.filename.endswith(".py"):
            with open("/tmp/module.py", "wb") as f:
                f.write(data)
            try:
                # dfile: the path tracebacks showed when the module was compiled from the zip's source
                py_compile.compile("/tmp/module.py", "/tmp/module.pyc", dfile=f"{archive}/{info.filename}",
                                   doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except py_compile.PyCompileError:
                kept.append(info.filename)
            else:
                with open("/tmp/module.pyc", "rb") as f:
                    data = f.read()
                info = zipfile.ZipInfo(info.filename + "c", date_time=info.date_time)
                compiled += 1
        out = zipfile.ZipInfo(info.filename, date_time=info.date_time)  # fixed times: reproducible bytes
        out.compress_type = zipfile.ZIP_DEFLATED
        zout.writestr(out, data, compresslevel=9)
f"{compiled} modules compiled to bytecode ({sys.version.split()[0]}); kept as source: {kept or 'none'}"
`);
fs.writeFileSync(outZip, pyodide.FS.readFile("/tmp/out.zip"));
console.log(report);
