// The progress demo: clicking the button runs a job whose progress events
// take the bar to 100% (every step seen), then the done event closes the stream.
import { run, base, until, screenshot, roomInfo } from "./lib.mjs";

await run(async ({ newPage }) => {
  const page = await newPage();
  await page.goto(`${base}/demo/progress`);
  // Record every value the bar shows, as each progress event is swapped in.
  await page.evaluate(() => {
    window.__seen = [];
    new MutationObserver(() => {
      const s = document.querySelector(".job .bar span");
      if (s && window.__seen[window.__seen.length - 1] !== s.textContent) window.__seen.push(s.textContent);
    }).observe(document.getElementById("jobs"), { subtree: true, childList: true, characterData: true });
  });
  await page.click("button");
  const job = await until("the job fragment", () => page.$eval(".job p", (e) => e.textContent).catch(() => null));
  await until("the done event to close the stream", () => page.$(".job[data-closed=done]"));
  const bar = await page.$eval(".job .bar span", (e) => e.textContent);
  const width = await page.$eval(".job .bar .fill", (e) => e.style.width);
  const status = await page.$eval(".job .status", (e) => e.textContent);
  const seen = await page.evaluate(() => window.__seen);
  const id = job.replace("Job ", "");
  // The server sees the stream go: the job's room has no subscriber left.
  await until("the job's stream to leave", async () => (await roomInfo(`demo-job-${id}`)).subscribers === 0);
  const shot = await screenshot(page, "progress");
  return { job, bar, width, status, seen, screenshot: shot, errors: page.__errors };
});
