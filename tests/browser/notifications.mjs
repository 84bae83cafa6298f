// The notifications demo: run the curl line printed on the page; the
// notification it publishes appears in the page.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { run, base, until, screenshot } from "./lib.mjs";

await run(async ({ newPage }) => {
  const page = await newPage();
  await page.goto(`${base}/demo/notifications`);
  await until("the stream to open", async () => (await page.textContent("#status")) === "connected");
  const curl = await page.textContent("#curl");
  if (!curl.startsWith(`curl -X POST '${base}/publish/notifications?event=notification'`)) {
    throw new Error(`the page prints an unexpected curl line: ${curl}`);
  }
  const { stdout } = await promisify(execFile)("bash", ["-c", curl]);
  const items = await until("the notification to appear", async () => {
    const t = await page.$$eval("#notifications > *", (els) => els.map((e) => e.textContent));
    return t.length > 0 && t;
  });
  if (items.length !== 1 || items[0] !== "Deploy finished") {
    throw new Error(`page shows ${JSON.stringify(items)}`);
  }
  const shot = await screenshot(page, "notifications");
  return { curl, publish_answer: stdout.trim(), items, screenshot: shot, errors: page.__errors };
});
