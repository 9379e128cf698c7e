/**
 * The server behind `deno task web`: bundles the page's scripts with `deno bundle` (once, at
 * start), then serves `web/` and the built-in Fashion-MNIST subset on 127.0.0.1.
 *
 * Every response carries the two cross-origin isolation headers (COOP `same-origin`, COEP
 * `require-corp`): without them a browser leaves `SharedArrayBuffer` undefined, and the CPU
 * backend's two-thread matrix product needs it.
 *
 * ```sh
 * deno task web                   # http://127.0.0.1:8000/
 * deno task web --port 0          # any free port (printed)
 * deno task web --no-isolation    # without COOP/COEP, as a plain static host serves it
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";

/** The page's entry points, bundled to `web/dist/<name>.js`. */
export const ENTRY_POINTS = [
  "app",
  "train_worker",
  "gemm_worker",
  "parity",
  "imagenet",
  "imagenet_worker",
] as const;

const ROOT = new URL("../", import.meta.url);
const WEB = new URL("./", import.meta.url);
/** Where {@link bundle} writes by default. */
export const DIST: URL = new URL("dist/", WEB);

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  gz: "application/octet-stream",
  png: "image/png",
};

/** Bundles every entry point for the browser into `dist`; throws with deno's message on failure. */
export async function bundle(dist: URL = DIST): Promise<void> {
  for (const name of ENTRY_POINTS) {
    const output = await new Deno.Command("deno", {
      args: [
        "bundle",
        "--quiet",
        "--platform",
        "browser",
        "--output",
        new URL(`${name}.js`, dist).pathname,
        new URL(`${name}.ts`, WEB).pathname,
      ],
      stdout: "inherit",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(
        `web: deno bundle ${name}.ts failed:\n${new TextDecoder().decode(output.stderr)}`,
      );
    }
  }
}

/**
 * Maps a request path to a file URL, or null when it is outside the served folders: the page,
 * its bundles and the data set, nothing else.
 */
function resolve(pathname: string, dist: URL): URL | null {
  const path = pathname.endsWith("/") ? pathname + "index.html" : pathname;
  if (path.split("/").some((part) => part === ".." || part.startsWith("."))) return null;
  const routes: [prefix: string, dir: URL][] = [
    ["/dist/", dist],
    ["/data/fashion-mnist/", new URL("data/fashion-mnist/", ROOT)],
    ["/", WEB],
  ];
  for (const [prefix, dir] of routes) {
    if (path.startsWith(prefix)) return new URL(path.slice(prefix.length), dir);
  }
  return null;
}

/** Options of {@link handle}. */
export interface HandleOptions {
  /**
   * Send the cross-origin isolation headers (default true). Without them the page still
   * works, on one thread: the tests check that.
   */
  isolated?: boolean;
  /** Where the bundles are (default {@link DIST}). */
  dist?: URL;
}

/**
 * Answers one request: a page, script, style, image or data file (with the isolation
 * headers), or 404.
 */
export async function handle(request: Request, options: HandleOptions = {}): Promise<Response> {
  const headers = new Headers({ "Cache-Control": "no-store" });
  if (options.isolated ?? true) {
    headers.set("Cross-Origin-Opener-Policy", "same-origin");
    headers.set("Cross-Origin-Embedder-Policy", "require-corp");
  }
  const url = new URL(request.url);
  const file = resolve(decodeURIComponent(url.pathname), options.dist ?? DIST);
  const type = TYPES[file?.pathname.split(".").pop() ?? ""];
  if ((request.method !== "GET" && request.method !== "HEAD") || file === null || !type) {
    return new Response("not found\n", { status: 404, headers });
  }
  try {
    const body = await Deno.readFile(file);
    headers.set("Content-Type", type);
    return new Response(request.method === "HEAD" ? null : body, { headers });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory) {
      return new Response("not found\n", { status: 404, headers });
    }
    throw error;
  }
}

/** Bundles into `options.dist`, then serves on 127.0.0.1:`port` until the process ends. */
export async function serve(
  port: number,
  options: HandleOptions = {},
): Promise<Deno.HttpServer<Deno.NetAddr>> {
  await bundle(options.dist);
  return Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ port }) => console.log(`tessera web: http://127.0.0.1:${port}/`),
  }, (request) => handle(request, options));
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "8000" },
      dist: { type: "string" },
      "no-isolation": { type: "boolean", default: false },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`web: --port must be an integer in [0, 65535], got ${values.port}`);
    Deno.exit(2);
  }
  const dist = values.dist === undefined
    ? DIST
    : new URL(`file://${values.dist.replace(/\/?$/, "/")}`);
  await serve(port, { dist, isolated: !values["no-isolation"] });
}
