// Shared helpers of the browser scenarios: launch the system Chromium through
// playwright-core, report JSON lines on stdout, poll for conditions.
//
// Protocol with tests/browser.rs: every stdout line is one JSON object.
// Progress lines are {"event": ...}; the last line is {"ok": true, ...} or
// {"ok": false, "error": "..."}; the exit code is 0 only when ok. The
// result line also carries `transport`: the URL of every document,
// WebSocket and EventSource the pages opened (so a test can check that a
// page served over https really streams over wss:// and https://), and every
// request that failed.
//
// TLS: when RINGCAST_TLS_CERT names the PEM certificate of the server under
// test, Chromium trusts that one key and nothing else
// (--ignore-certificate-errors-spki-list with its SPKI SHA-256; any other
// certificate error still fails). Node's fetch and the curl the
// notifications page prints trust it through NODE_EXTRA_CA_CERTS and
// CURL_CA_BUNDLE, which the test sets.
import { createRequire } from "node:module";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
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

export const tlsCert = process.env.RINGCAST_TLS_CERT || "";

/// The base64 SHA-256 of a PEM certificate's SubjectPublicKeyInfo, the form
/// --ignore-certificate-errors-spki-list takes.
export function spkiHash(pemPath) {
  const cert = new X509Certificate(readFileSync(pemPath));
  const der = cert.publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("base64");
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

/// Launches Chromium with a fresh profile. Returns { context, newPage, close, transport }.
/// Every page records its dialogs and script errors in page.__dialogs / page.__errors.
/// `trust`: the certificate whose key Chromium accepts (default: RINGCAST_TLS_CERT).
export async function launch({ trust = tlsCert } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "ringcast-chromium-"));
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ];
  // Honoured together with --user-data-dir, which a persistent context passes.
  if (trust) args.push(`--ignore-certificate-errors-spki-list=${spkiHash(trust)}`);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1000, height: 720 },
    args,
  });
  const transport = { documents: [], websockets: [], eventsources: [], failed: [] };
  async function newPage() {
    const page = await context.newPage();
    page.__dialogs = [];
    page.__errors = [];
    page.on("dialog", (d) => { page.__dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    page.on("pageerror", (e) => page.__errors.push(String(e)));
    page.on("websocket", (ws) => transport.websockets.push(ws.url()));
    page.on("request", (r) => {
      const kind = r.resourceType();
      if (kind === "document") transport.documents.push(r.url());
      if (kind === "eventsource") transport.eventsources.push(r.url());
    });
    // (a stream the page closes on purpose, e.g. with sse-close, shows as net::ERR_ABORTED)
    page.on("requestfailed", (r) => transport.failed.push(`${r.url()}: ${r.failure() ? r.failure().errorText : "?"}`));
    return page;
  }
  async function close() {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  return { context, newPage, close, transport };
}

/// Saves `name`.png (`name`-tls.png when the page was served over https).
export async function screenshot(page, name) {
  mkdirSync(screenshots, { recursive: true });
  const suffix = page.url().startsWith("https:") ? "-tls" : "";
  const path = join(screenshots, `${name}${suffix}.png`);
  await page.screenshot({ path });
  return path;
}

/// GET /rooms/{room} as JSON.
export async function roomInfo(room) {
  const r = await fetch(`${base}/rooms/${room}`);
  return r.json();
}

/// Runs a scenario: launches the browser (with `options`, see launch), calls
/// body(browser), prints the result line, exits 0; any error prints
/// {"ok": false} and exits 1.
export async function run(body, options = {}) {
  let browser;
  const timer = setTimeout(() => fail("scenario took longer than 60s"), 60000);
  try {
    browser = await launch(options);
    const result = await body(browser);
    await browser.close();
    clearTimeout(timer);
    emit({ ok: true, ...result, transport: browser.transport });
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
