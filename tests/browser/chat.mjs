// The chat demo: a message typed in page A appears in page B (and in A);
// "<script>alert(1)</script>" is shown as text and runs nothing.
import { run, base, until, screenshot, roomInfo, sleep } from "./lib.mjs";

async function say(page, user, message) {
  await page.fill("input[name=user]", user);
  await page.fill("input[name=message]", message);
  await page.click("form button");
}

const messages = (page) => page.$$eval("#messages .msg", (els) => els.map((e) => e.textContent));

await run(async ({ newPage }) => {
  const a = await newPage();
  const b = await newPage();
  for (const p of [a, b]) {
    await p.goto(`${base}/demo/chat`);
    await until("the socket to open", async () => (await p.textContent("#status")) === "connected");
  }
  await until("both pages in room demo-chat", async () => (await roomInfo("demo-chat")).subscribers === 2);

  await say(a, "alice", "hello from A");
  await until("B to show A's message", async () => (await messages(b)).includes("alice: hello from A"));

  const xss = "<script>alert(1)</script>";
  await say(a, "<b>mallory</b>", xss);
  await say(a, "mallory", '<img src=x onerror="alert(2)">');
  for (const p of [a, b]) {
    await until("the script text to show", async () => {
      const m = await messages(p);
      return m.includes(`<b>mallory</b>: ${xss}`) && m.includes('mallory: <img src=x onerror="alert(2)">');
    });
  }
  await sleep(300); // give a wrongly inserted <img> time to fail loading and fire onerror
  const injected = await b.$$eval("#messages script, #messages img, #messages b b", (els) => els.length);
  const result = {
    a: await messages(a),
    b: await messages(b),
    dialogs: [...a.__dialogs, ...b.__dialogs],
    injected_elements: injected,
    errors: [...a.__errors, ...b.__errors],
  };
  result.screenshot = await screenshot(b, "chat");
  if (result.dialogs.length || injected) throw new Error(`markup ran: ${JSON.stringify(result)}`);
  return result;
});
