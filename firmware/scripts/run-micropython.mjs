// Run a Python script under the MicroPython WebAssembly port, with the sensor node's pure
// modules copied into its /lib. Usage: node run-micropython.mjs <micropython.mjs> <repo> <script>
// Prints the script's stdout; exits 1 with the traceback on a Python error.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";

const [mjs, repo, script] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(mjs).href);
const out = [];
const mp = await loadMicroPython({
  stdout: (line) => out.push(line),
  stderr: (line) => out.push(line),
});

// Hardware layers stay out: device/ needs machine/umqtt, host/ needs CPython.
const SKIP = new Set(["device", "host", "__pycache__"]);
function copyTree(dir) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const rel = relative(repo, full);
    if (statSync(full).isDirectory()) {
      if (SKIP.has(name)) continue;
      mp.FS.mkdir("/lib/" + rel);
      copyTree(full);
    } else if (name.endsWith(".py")) {
      mp.FS.writeFile("/lib/" + rel, readFileSync(full));
    }
  }
}
for (const d of ["/lib", "/lib/firmware", "/lib/firmware/sensor_node", "/tmp"]) {
  try { mp.FS.mkdir(d); } catch (e) { /* exists */ }
}
mp.FS.writeFile("/lib/firmware/__init__.py", readFileSync(join(repo, "firmware/__init__.py")));
copyTree(join(repo, "firmware/sensor_node"));
try {
  mp.runPython(readFileSync(script, "utf8"));
} catch (e) {
  process.stdout.write(out.join("\n") + "\n");
  process.stderr.write(String(e.message || e) + "\n");
  process.exit(1);
}
process.stdout.write(out.join("\n") + "\n");
