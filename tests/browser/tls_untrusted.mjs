// Over https, Chromium trusting another key only (argv[3]: a certificate
// for the same names with a different key): the page must not load. The
// TLS scenarios work because they pin the server's own key, not because
// certificate errors are ignored.
import { run, base } from "./lib.mjs";

const other = process.argv[3];
if (!other) throw new Error("usage: tls_untrusted.mjs BASE OTHER_CERT.pem");

await run(async ({ newPage }) => {
  const page = await newPage();
  let error = null;
  let status = null;
  try {
    const r = await page.goto(`${base}/demo/chat`);
    status = r ? r.status() : null;
  } catch (e) {
    error = String(e.message).split("\n")[0];
  }
  return { error, status };
}, { trust: other });
