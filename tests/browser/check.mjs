// Opens the DCGAN lesson notebook in JupyterLab (started by scripts/browser-check on loopback) in
// headless Chromium, runs its first cells up to the one that shows real digits as a sample grid,
// waits for the inline PNG and saves a screenshot.
//
// Environment: LAB_URL (http://127.0.0.1:PORT), LAB_TOKEN, SCREENSHOT (output path).
import { chromium } from "playwright-core";

const url = `${process.env.LAB_URL}/lab/tree/01-dcgan.ipynb?token=${process.env.LAB_TOKEN}`;
const screenshot = process.env.SCREENSHOT ?? "dcgan-in-jupyterlab.png";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(url);
  // The notebook is open and its kernel is "Rust (gan_lab)" and idle.
  await page.waitForSelector(".jp-Notebook .jp-Cell", { timeout: 120_000 });
  await page.waitForSelector("text=Rust (gan_lab)", { timeout: 120_000 });
  await page.waitForSelector(".jp-Notebook-ExecutionIndicator[data-status='idle'], .jp-Toolbar-kernelStatus[data-status='idle']", { timeout: 300_000 }).catch(() => {});
  // Run cells from the top until the grid cell (the fifth) has run: Shift+Enter on each.
  await page.click(".jp-Notebook .jp-Cell >> nth=0");
  for (let i = 0; i < 5; i++) {
    await page.keyboard.press("Shift+Enter");
    await page.waitForTimeout(300);
  }
  const grid = page.locator(".jp-Notebook .jp-Cell >> nth=4").locator(".jp-OutputArea-output img");
  await grid.waitFor({ timeout: 600_000 });
  await grid.scrollIntoViewIfNeeded();
  const size = await grid.evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  await page.screenshot({ path: screenshot });
  console.log(`inline sample grid rendered in JupyterLab: ${size[0]}×${size[1]} px; screenshot ${screenshot}`);
  if (!(size[0] > 100 && size[1] > 50)) {
    console.error("the grid image is empty");
    failed = true;
  }
} catch (e) {
  console.error(`browser check failed: ${e.message}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
