// Shared helpers of the browser scenarios: launch the system Chromium through
// playwright-core, report JSON lines on stdout, poll for conditions.
//
// Protocol with tests/browser.rs: every stdout line is one JSON object.
// Progress lines are {"event": ...}; the last line is {"ok": true, ...} or
// {"ok": false, "error": "..."}; the exit code is 0 only when ok.
import { createRequire } from "node:module";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const deps = process.env.RINGCAST_BROWSER_DEPS;
if (!deps) fail("RINGCAST_BROWSER_DEPS is not set (run tests/browser/setup.sh)");
const require = createRequire(join(deps, "package.json"));
let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch (e) {
  fail(`playwright-core is not installed in ${deps}: run tests/browser/setup.sh (${e.message})`);
}

export const base = process.argv[2];
export const screenshots = process.env.RINGCAST_SCREENSHOTS || "target/screenshots";

export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

export function fail(error) {
  emit({ ok: false, error: String(error && error.stack ? error.stack : error) });
  process.exit(1);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Polls `fn` (async allowed) until it returns a truthy value; fails after `ms`.
export async function until(what, fn, ms = 10000, every = 50) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out after ${ms}ms waiting for ${what} (last: ${JSON.stringify(String(last))})`);
}

/// Launches Chromium with a fresh profile. Returns { context, newPage, close }.
/// Every page records its dialogs and script errors in page.__dialogs / page.__errors.
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "ringcast-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1000, height: 720 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  async function newPage() {
    const page = await context.newPage();
    page.__dialogs = [];
    page.__errors = [];
    page.on("dialog", (d) => { page.__dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    page.on("pageerror", (e) => page.__errors.push(String(e)));
    return page;
  }
  async function close() {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  return { context, newPage, close };
}

export async function screenshot(page, name) {
  mkdirSync(screenshots, { recursive: true });
  const path = join(screenshots, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/// GET /rooms/{room} as JSON.
export async function roomInfo(room) {
  const r = await fetch(`${base}/rooms/${room}`);
  return r.json();
}

/// Runs a scenario: launches the browser, calls body(browser), prints the
/// result line, exits 0; any error prints {"ok": false} and exits 1.
export async function run(body) {
  let browser;
  const timer = setTimeout(() => fail("scenario took longer than 60s"), 60000);
  try {
    browser = await launch();
    const result = await body(browser);
    await browser.close();
    clearTimeout(timer);
    emit({ ok: true, ...result });
    process.exit(0);
  } catch (e) {
    if (browser) await browser.close();
    fail(e);
  }
}

/// Restart scenarios: records every change of the page's #status text (and
/// reports it), waits until it reads "connected", then reports the texts of
/// `selector`'s children as they grow until there are `expected`; fails on a
/// duplicate. Returns { items, statuses }.
export async function followUntil(page, selector, expected) {
  const statuses = [];
  await page.exposeFunction("__status", (s) => { statuses.push(s); emit({ event: "status", status: s }); });
  await page.evaluate(() => {
    const el = document.getElementById("status");
    window.__status(el.textContent);
    new MutationObserver(() => window.__status(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
  });
  await until("the page to connect", async () => (await page.textContent("#status")) === "connected");
  emit({ event: "ready" });
  let last = -1;
  const items = await until(`${expected} items in ${selector}`, async () => {
    const t = await page.$$eval(`${selector} > *`, (els) => els.map((e) => e.textContent));
    if (t.length !== last) { last = t.length; emit({ event: "seen", items: t }); }
    return t.length >= expected && t;
  }, 45000);
  if (new Set(items).size !== items.length) throw new Error(`duplicates: ${JSON.stringify(items)}`);
  return { items, statuses };
}
