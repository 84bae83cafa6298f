// The tickers demo: prices and clock, fed by the built-in demo publisher, change over time.
import { run, base, until, screenshot } from "./lib.mjs";

const read = (page) => page.evaluate(() =>
  Object.fromEntries(["ACME", "GLOBEX", "INITECH", "clock", "load"].map((id) => [id, document.getElementById(id).textContent.trim()])));

await run(async ({ newPage }) => {
  const page = await newPage();
  await page.goto(`${base}/demo/tickers`);
  const first = await until("first values", async () => {
    const v = await read(page);
    return Object.values(v).every((x) => x !== "\u2026") && v;
  });
  const later = await until("the clock and a price to change", async () => {
    const v = await read(page);
    const priceMoved = ["ACME", "GLOBEX", "INITECH"].some((k) => v[k] !== first[k]);
    return v.clock !== first.clock && priceMoved && v;
  });
  const shot = await screenshot(page, "tickers");
  return { first, later, screenshot: shot, errors: page.__errors };
});
