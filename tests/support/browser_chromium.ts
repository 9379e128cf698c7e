/**
 * Headless Chromium for the browser tests: starts the web server (web/server.ts) on a free
 * port of 127.0.0.1, starts Chromium with WebGPU on its bundled SwiftShader Vulkan, and talks
 * to one page over the Chrome DevTools Protocol (a WebSocket on 127.0.0.1): navigate, evaluate
 * an expression, take a screenshot.
 *
 * Chromium may reach nothing but 127.0.0.1: its host resolver maps every other name to
 * "not found", and its background services (updates, sync, safe browsing) are switched off.
 *
 * Without a `chromium` binary the browser tests are skipped with a message, except in CI
 * (env CI=true), where they fail.
 *
 * @module
 */

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "chromium";

/** Whether Chromium can be started (resolved once, at import). */
export const chromiumAvailable: boolean = await (async () => {
  try {
    return (await new Deno.Command(CHROMIUM, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output()).success;
  } catch {
    return false;
  }
})();

if (!chromiumAvailable) {
  if (Deno.env.get("CI") === "true") {
    throw new Error("CI=true but chromium is missing: apt-get install chromium");
  }
  console.warn("chromium not found: browser tests are skipped (apt-get install chromium)");
}

/** Flags: headless WebGPU on SwiftShader, no network but 127.0.0.1, no background services. */
export const CHROMIUM_FLAGS = [
  "--headless=new",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-vulkan=swiftshader",
  "--use-webgpu-adapter=swiftshader",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-default-apps",
  "--disable-extensions",
  "--no-first-run",
  "--no-default-browser-check",
  "--no-pings",
  "--mute-audio",
  "--window-size=1280,900",
];

/** The flags that give headless Chromium its WebGPU adapter. */
const WEBGPU = new Set([
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-vulkan=swiftshader",
  "--use-webgpu-adapter=swiftshader",
]);

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
}

/** A page of a headless Chromium, driven over the DevTools protocol. */
export class BrowserPage {
  #socket: WebSocket;
  #nextId = 1;
  #pending = new Map<
    number,
    { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }
  >();
  /** Console messages and uncaught exceptions of the page, for failure messages. */
  readonly log: string[] = [];

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data) as CdpMessage;
      if (message.id !== undefined) {
        const waiter = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.error) waiter?.reject(new Error(`CDP: ${message.error.message}`));
        else waiter?.resolve(message.result ?? {});
      } else if (message.method === "Runtime.consoleAPICalled") {
        const args = message.params!.args as { value?: unknown; description?: string }[];
        this.log.push(args.map((a) => a.value ?? a.description).join(" "));
      } else if (message.method === "Runtime.exceptionThrown") {
        const details = message.params!.exceptionDetails as {
          exception?: { description?: string };
          text: string;
        };
        this.log.push(`uncaught: ${details.exception?.description ?? details.text}`);
      }
    };
  }

  /** Connects to a page target's WebSocket URL. */
  static async connect(url: string): Promise<BrowserPage> {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error(`CDP: cannot connect to ${url}`));
    });
    const page = new BrowserPage(socket);
    await page.send("Runtime.enable");
    await page.send("Page.enable");
    return page;
  }

  /** Sends one protocol command and waits for its result. */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    this.#socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }));
  }

  /** Opens `url` in this page (returns once the navigation is committed). */
  async goto(url: string): Promise<void> {
    const result = await this.send("Page.navigate", { url });
    if (result.errorText) throw new Error(`navigate ${url}: ${result.errorText}`);
  }

  /** The value of a JavaScript expression in the page (promises are awaited). */
  async evaluate<T>(expression: string): Promise<T> {
    const result = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    const details = result.exceptionDetails as { exception?: { description?: string } } | undefined;
    if (details) throw new Error(`page: ${details.exception?.description ?? "exception"}`);
    return (result.result as { value: T }).value;
  }

  /** Evaluates `expression` every 250 ms until it is truthy; throws after `seconds`. */
  async waitFor<T>(expression: string, seconds: number): Promise<T> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const value = await this.evaluate<T>(expression);
      if (value) return value;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${seconds} s waiting for ${expression}; page log:\n` +
            this.log.slice(-20).join("\n"),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** A PNG screenshot of the viewport. */
  async screenshot(): Promise<Uint8Array> {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    return Uint8Array.from(atob(data as string), (c) => c.charCodeAt(0));
  }

  close(): void {
    this.#socket.close();
  }
}

/** Options of {@link withBrowser}. */
export interface BrowserOptions {
  /** Send the cross-origin isolation headers (default true). */
  isolated?: boolean;
  /** Start Chromium with WebGPU (default true); without, it has no adapter. */
  webgpu?: boolean;
}

/**
 * Starts `web/server.ts` on a free port (as `deno task web` does), starts Chromium, runs `fn`
 * with a page and the server's origin, and always cleans up (Chromium and the server killed,
 * the temporary folders removed).
 */
export async function withBrowser(
  fn: (page: BrowserPage, origin: string) => Promise<void>,
  options: BrowserOptions = {},
): Promise<void> {
  // Bundles of its own, so that test files running in parallel never read a half-written one.
  const dist = await Deno.makeTempDir({ prefix: "tessera-web-" });
  const profile = await Deno.makeTempDir({ prefix: "tessera-chromium-" });
  const server = startServer(dist, options.isolated ?? true);
  let chromium: Deno.ChildProcess | null = null;
  let page: BrowserPage | null = null;
  try {
    const origin = await server.origin;
    chromium = new Deno.Command(CHROMIUM, {
      args: [
        ...(options.webgpu ?? true ? CHROMIUM_FLAGS : CHROMIUM_FLAGS.filter((f) => !WEBGPU.has(f))),
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const port = await devtoolsPort(profile);
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
      type: string;
      webSocketDebuggerUrl: string;
    }[];
    const target = targets.find((t) => t.type === "page");
    if (!target) throw new Error("chromium: no page target");
    page = await BrowserPage.connect(target.webSocketDebuggerUrl);
    await fn(page, origin);
  } finally {
    page?.close();
    if (chromium) {
      chromium.kill("SIGKILL");
      await chromium.status;
    }
    await server.stop();
    for (const dir of [profile, dist]) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Runs web/server.ts with the task's permissions; `origin` resolves once it listens. */
function startServer(dist: string, isolated: boolean) {
  const args = [
    "run",
    `--allow-read=web,data/fashion-mnist,${dist}`,
    "--allow-run=deno",
    "--allow-net=127.0.0.1",
    "web/server.ts",
    "--port=0",
    `--dist=${dist}`,
    ...(isolated ? [] : ["--no-isolation"]),
  ];
  const root = new URL("../../", import.meta.url).pathname;
  const child = new Deno.Command("deno", { args, cwd: root, stdout: "piped", stderr: "piped" })
    .spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const origin = (async () => {
    let text = "";
    for (;;) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`web/server.ts exited before listening:\n${await stderr}`);
      text += value;
      const match = text.match(/http:\/\/127\.0\.0\.1:\d+/);
      if (match) return match[0];
    }
  })();
  return {
    origin,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      await child.status;
      await lines.cancel().catch(() => {});
      await stderr.catch(() => {});
      await origin.catch(() => {});
    },
  };
}

/** Chromium writes the port it chose to <profile>/DevToolsActivePort. */
async function devtoolsPort(profile: string): Promise<number> {
  for (let i = 0; i < 300; i++) {
    try {
      const text = await Deno.readTextFile(`${profile}/DevToolsActivePort`);
      const port = Number(text.split("\n")[0]);
      if (port > 0) return port;
    } catch {
      // not written yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("chromium did not open its DevTools port within 30 s");
}
