// Restart without loss: a notifications page stays open while tests/browser.rs
// publishes, restarts the server on the same port and publishes more. This
// script reports what the page shows ({"event":"seen"} lines, status changes)
// until it shows `expected` notifications, then checks nothing was duplicated.
import { run, base, screenshot, followUntil } from "./lib.mjs";

const expected = Number(process.argv[3]);

await run(async ({ newPage }) => {
  const page = await newPage();
  await page.goto(`${base}/demo/notifications`);
  const { items, statuses } = await followUntil(page, "#notifications", expected);
  const shot = await screenshot(page, "restart");
  return { items, statuses, screenshot: shot };
});
