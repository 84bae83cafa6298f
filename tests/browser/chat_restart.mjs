// Lossless WebSocket reconnect: a chat page stays open while tests/browser.rs
// publishes, restarts the server on the same port and publishes more. The
// page reconnects with ?last_event_id= from the cursor each message swapped
// in. Reports what #messages shows until it has `expected` lines.
import { run, base, screenshot, followUntil } from "./lib.mjs";

const expected = Number(process.argv[3]);

await run(async ({ newPage }) => {
  const page = await newPage();
  await page.goto(`${base}/demo/chat`);
  // A fixed 2 s between reconnection attempts (the extension's default is a
  // random jitter): time for the restart and the publishes the page must miss.
  await page.evaluate(() => { htmx.config.wsReconnectDelay = () => 2000; });
  const { items, statuses } = await followUntil(page, "#messages", expected);
  const cursor = await page.getAttribute("#ringcast-cursor", "data-last-event-id");
  const shot = await screenshot(page, "chat-restart");
  return { items, statuses, cursor, screenshot: shot };
});
