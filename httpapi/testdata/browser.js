// browser.js drives a headless Chromium for the status page test of
// package httpapi (page_browser_test.go), through the npm package
// playwright-core and the system's browser. It reads one JSON command a
// line on standard input and answers each with one JSON line on standard
// output, {"value": ...} or {"error": "..."}:
//
//   {"op":"goto","url":U}                  loads U; the value is the page's URL
//   {"op":"fill","selector":S,"value":V}   types V into the field S
//   {"op":"click","selector":S}
//   {"op":"wait","selector":S,"text":T,"state":"visible"|"hidden","timeout":MS}
//                                          waits until an element S (holding T) is so
//   {"op":"text","selector":S}             the text content of the first S
//   {"op":"texts","selector":S}            the text contents of every S
//   {"op":"attr","selector":S,"name":N}    an attribute of the first S
//   {"op":"visible","selector":S}          whether the first S is visible
//   {"op":"session","key":K}               sessionStorage's K, or null
//   {"op":"screenshot","path":P}           a PNG of the whole page
//   {"op":"problems"}                      console errors and warnings, page errors
//   {"op":"close"}                         closes the browser and exits
//
// The end of standard input closes the browser too. Environment:
// AUTOCERT_CHROMIUM is the browser (default /usr/bin/chromium) and
// AUTOCERT_PROFILE an empty directory for its profile. Node finds
// playwright-core through NODE_PATH.
"use strict";
const { chromium } = require("playwright-core");
const readline = require("node:readline");

async function main() {
  // Chromium refuses to run its sandbox as root: only then without it.
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  const context = await chromium.launchPersistentContext(process.env.AUTOCERT_PROFILE, {
    executablePath: process.env.AUTOCERT_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    chromiumSandbox: !root,
    viewport: { width: 1100, height: 900 },
    // This machine's network is closed: no background connections.
    args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-default-apps"],
  });
  const problems = [];
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(m.type() + ": " + m.text());
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));

  const ops = {
    goto: async (c) => { await page.goto(c.url); return page.url(); },
    fill: async (c) => { await page.locator(c.selector).first().fill(c.value); return null; },
    click: async (c) => { await page.locator(c.selector).first().click(); return null; },
    wait: async (c) => {
      const opts = c.text ? { hasText: c.text } : {};
      await page.locator(c.selector, opts).first().waitFor({ state: c.state || "visible", timeout: c.timeout || 30000 });
      return null;
    },
    text: (c) => page.locator(c.selector).first().textContent(),
    texts: (c) => page.locator(c.selector).allTextContents(),
    attr: (c) => page.locator(c.selector).first().getAttribute(c.name),
    visible: (c) => page.locator(c.selector).first().isVisible(),
    session: (c) => page.evaluate((k) => sessionStorage.getItem(k), c.key),
    screenshot: async (c) => { await page.screenshot({ path: c.path, fullPage: true }); return c.path; },
    problems: async () => problems.splice(0),
    close: async () => null,
  };

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    let reply;
    let op = "";
    try {
      const c = JSON.parse(line);
      op = c.op;
      if (!Object.hasOwn(ops, op)) throw new Error("unknown op " + JSON.stringify(op));
      reply = { value: await ops[op](c) };
    } catch (e) {
      reply = { error: String((e && e.message) || e) };
    }
    process.stdout.write(JSON.stringify(reply) + "\n");
    if (op === "close") break;
  }
  await context.close();
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write("browser.js: " + ((e && e.stack) || e) + "\n");
    process.exit(1);
  },
);
