// Restart without loss: a notifications page stays open while tests/browser.rs
// publishes, restarts the server on the same port and publishes more. This
// script reports what the page shows ({"event":"seen"} lines, status changes)
// until it shows `expected` notifications, then checks nothing was duplicated.
import { run, base, until, screenshot, emit } from "./lib.mjs";

const expected = Number(process.argv[3]);

await run(async ({ newPage }) => {
  const page = await newPage();
  await page.goto(`${base}/demo/notifications`);
  const statuses = [];
  await page.exposeFunction("__status", (s) => { statuses.push(s); emit({ event: "status", status: s }); });
  await page.evaluate(() => {
    const el = document.getElementById("status");
    window.__status(el.textContent);
    new MutationObserver(() => window.__status(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
  });
  await until("the stream to open", async () => (await page.textContent("#status")) === "connected");
  emit({ event: "ready" });
  let last = -1;
  const items = await until(`${expected} notifications`, async () => {
    const t = await page.$$eval("#notifications > *", (els) => els.map((e) => e.textContent));
    if (t.length !== last) { last = t.length; emit({ event: "seen", items: t }); }
    return t.length >= expected && t;
  }, 45000);
  if (new Set(items).size !== items.length) throw new Error(`duplicates: ${JSON.stringify(items)}`);
  const shot = await screenshot(page, "restart");
  return { items, statuses, screenshot: shot };
});
