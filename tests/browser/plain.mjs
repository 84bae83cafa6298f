// The plain EventSource and WebSocket pages: each shows "open" and counts messages.
import { run, base, until, screenshot } from "./lib.mjs";

await run(async ({ newPage }) => {
  const out = {};
  for (const name of ["eventsource", "websocket"]) {
    const page = await newPage();
    await page.goto(`${base}/demo/${name}`);
    await until(`${name}: open`, async () => (await page.textContent("#status")) === "open");
    await until(`${name}: two messages`, async () => Number(await page.textContent("#count")) >= 2);
    const log = await page.$$eval("#log div", (els) => els.map((e) => e.textContent));
    out[name] = { status: await page.textContent("#status"), count: Number(await page.textContent("#count")),
      log: log.slice(-4), screenshot: await screenshot(page, name), errors: page.__errors };
  }
  return out;
});
