// The dashboard: figures change while tests/browser.rs runs load (it waits
// for {"event":"ready"}, then opens connections and publishes). The page must
// come to show at least `min_open` open connections and messages published/s.
import { run, base, until, screenshot, emit } from "./lib.mjs";

const minOpen = Number(process.argv[3]);

const figures = (page) => page.evaluate(() => ({
  open: Number((document.querySelector("#conns .big") || {}).firstChild?.textContent || NaN),
  // the legend shows 1.23k; data-value holds the figure
  published: Number(document.querySelector("#rates .now.pub")?.dataset.value ?? NaN),
  delivered: Number(document.querySelector("#rates .now.del")?.dataset.value ?? NaN),
  yAxis: [...document.querySelectorAll("#rates svg .tick")].map((e) => e.textContent),
  workers: [...document.querySelectorAll("#workers .label")].map((e) => e.textContent).filter(Boolean),
  cpu: document.querySelector("#process .value")?.textContent,
  rss: document.querySelector("#process .rss")?.textContent,
}));

await run(async ({ newPage }) => {
  const page = await newPage();
  await page.goto(`${base}/dashboard`);
  const before = await until("the first figures", async () => {
    const f = await figures(page);
    return !Number.isNaN(f.open) && f.rss && f.workers.length && f;
  });
  emit({ event: "ready", before });
  const during = await until("the figures to show the load", async () => {
    const f = await figures(page);
    return f.open >= minOpen && f.published >= 1 && f.delivered >= 1 && f;
  }, 20000);
  const shot = await screenshot(page, "dashboard");
  return { before, during, screenshot: shot, errors: page.__errors };
});
