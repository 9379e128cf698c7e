/**
 * A user's own WebGPU script, run without the tasks' environment (no XDG_RUNTIME_DIR, no
 * DENO_WEBGPU_BACKEND): it gets the adapter and computes, and Mesa prints nothing, because
 * `initWebGPU` switches the device-selection layer off when there is no desktop session.
 * With no permission to read the variables it cannot do that; the run still works.
 */

import assert from "node:assert/strict";
import { gpuAvailable } from "../support/gpu_helpers.ts";

const MOD = new URL("../../mod.ts", import.meta.url).href;

const SCRIPT = `
import { initWebGPU, matmul, ones } from ${JSON.stringify(MOD)};
await initWebGPU();
const c = matmul(ones([8, 16], { device: "gpu" }), ones([16, 4], { device: "gpu" }));
console.log((await c.data())[0]);
`;

/** Runs the script in a child with only PATH and HOME set; returns its output. */
async function runScript(permissions: string[]): Promise<{ stdout: string; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "tessera-webgpu-" });
  try {
    await Deno.writeTextFile(`${dir}/script.ts`, SCRIPT);
    const env: Record<string, string> = { NO_COLOR: "1" };
    for (const name of ["PATH", "HOME", "DENO_DIR"]) {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    }
    const output = await new Deno.Command("deno", {
      args: ["run", "--no-lock", ...permissions, `${dir}/script.ts`],
      cwd: new URL("../..", import.meta.url).pathname,
      clearEnv: true,
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.ok(output.success, `the script failed:\n${stdout}\n${stderr}`);
    return { stdout, stderr };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "package: a WebGPU script needs no task environment and prints no Mesa noise",
  ignore: !gpuAvailable || Deno.build.os !== "linux",
  fn: async () => {
    const quiet = await runScript(["--allow-env"]);
    assert.equal(quiet.stdout.trim(), "16"); // each entry sums 16 products of ones
    assert.doesNotMatch(quiet.stderr, /XDG_RUNTIME_DIR/);
    // Reading only the three variables is enough.
    const narrow = await runScript([
      "--allow-env=XDG_RUNTIME_DIR,NODEVICE_SELECT,MESA_VK_DEVICE_SELECT",
    ]);
    assert.equal(narrow.stdout.trim(), "16");
    assert.doesNotMatch(narrow.stderr, /XDG_RUNTIME_DIR/);
    // Without env access the script still works (Mesa may then print its two lines).
    assert.equal((await runScript([])).stdout.trim(), "16");
  },
});
