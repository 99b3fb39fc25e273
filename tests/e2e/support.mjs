// Shared helpers of the browser end-to-end tests: launching Debian's Chromium, opening the
// explorer, waiting for what the page shows, native trace hashes, screenshots.
//
// `cargo xtask test` (xtask/src/test.rs, fn e2e) builds the bundle, serves www/ on a free local
// port and runs `node --test` here with these variables set:
//   RINGSIDE_E2E_BASE_URL   the served explorer, e.g. http://127.0.0.1:41234/
//   RINGSIDE_NATIVE_HASHES  native trace hashes of the reference scenario, "7=0123…,42=…"
//   RINGSIDE_CHROMIUM       the browser binary (default /usr/bin/chromium)
//   RINGSIDE_E2E_SCREENSHOTS where screenshots go (default target/e2e-screenshots)

import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// Headless, and nothing that reaches the internet: without the background-networking flags
// Chromium keeps trying to reach Google's hosts and stalls on a closed network. Playwright gives
// each launch a fresh temporary profile (user data dir) and removes it on close.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// How long to wait for the page to show something (the wasm compiles first).
export const WAIT_MS = 15_000;

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.RINGSIDE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

// The explorer's URL with `query` (e.g. "?seed=7").
export function explorerUrl(query = '') {
  const base = process.env.RINGSIDE_E2E_BASE_URL;
  if (!base) {
    throw new Error(
      'RINGSIDE_E2E_BASE_URL is not set: run the suite with `cargo xtask test`, which builds ' +
        'the bundle, serves www/ and sets it',
    );
  }
  return new URL(query, base).href;
}

// The native trace hash (16 hex digits) of the reference scenario for `seed`, as computed by
// `core/examples/trace_hashes.rs` and passed in by xtask.
export function nativeHash(seed) {
  const text = process.env.RINGSIDE_NATIVE_HASHES ?? '';
  const hashes = new Map(
    text
      .split(',')
      .filter((pair) => pair.includes('='))
      .map((pair) => pair.split('=').map((part) => part.trim())),
  );
  const hash = hashes.get(String(seed));
  if (!hash) {
    throw new Error(
      `no native hash for seed ${seed} in RINGSIDE_NATIVE_HASHES="${text}": ` +
        'add the seed to E2E_SEEDS in xtask/src/test.rs',
    );
  }
  return hash;
}

// Opens the explorer in a new page of its own and waits until the app has mounted. Uncaught
// exceptions and console errors (failed loads among them) are collected in `problems`; a test
// asserts it stays empty.
export async function openExplorer(browser, query = '') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const where = message.location().url ?? '';
    // The page has no icon; Chromium asks for one anyway.
    if (new URL(where, 'http://x/').pathname === '/favicon.ico') return;
    problems.push(`console.error: ${message.text()} (${where})`);
  });
  const response = await page.goto(explorerUrl(query));
  assert.equal(response?.status(), 200, `GET ${explorerUrl(query)}`);
  await page.locator('h1').waitFor({ timeout: WAIT_MS });
  return { page, problems, close: () => context.close() };
}

// Waits until `selector`'s text satisfies `expected` (a string or a RegExp) and returns it; on
// timeout, fails with the text the page shows.
export async function waitForText(page, selector, expected, timeout = WAIT_MS) {
  const matches = (text) =>
    expected instanceof RegExp ? expected.test(text) : text === expected;
  const deadline = Date.now() + timeout;
  let text = null;
  for (;;) {
    text = await page.locator(selector).textContent({ timeout });
    if (text !== null && matches(text)) return text;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`${selector} shows ${JSON.stringify(text)}, expected ${expected} (after ${timeout} ms)`);
}

// A scenario file from `tests/fixtures/`, shared with the runner's and the CLI's tests.
export function fixture(name) {
  return readFile(path.join(PROJECT_ROOT, 'tests', 'fixtures', name), 'utf8');
}

// Where a screenshot called `name` goes; the directory is created. Not committed (target/).
export async function screenshotPath(name) {
  const dir =
    process.env.RINGSIDE_E2E_SCREENSHOTS || path.join(PROJECT_ROOT, 'target', 'e2e-screenshots');
  await mkdir(dir, { recursive: true });
  return path.join(dir, name);
}

// Opens the explorer, runs `body` with the page, then takes the test's screenshot
// (`explorer-<shot>.png`) and checks that the page logged no error. The screenshot is also taken
// when the test fails, to see why.
export async function withExplorer(browser, query, shot, body) {
  const opened = await openExplorer(browser, query);
  try {
    await body(opened.page);
    assert.deepEqual(opened.problems, [], 'no uncaught exception or console error');
  } finally {
    const file = await screenshotPath(`explorer-${shot}.png`);
    await opened.page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.log(`screenshot: ${file}`);
    await opened.close();
  }
}

// Polls `read()` until `ok(value)` holds and returns the value; fails with the last value.
export async function until(what, read, ok, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let value;
  for (;;) {
    value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`${what}: still ${JSON.stringify(value)} after ${timeout} ms`);
}

// Moves the cursor with the scrubber, as a drag does, and waits for the frame.
export async function seek(page, ms) {
  await page.locator('#scrubber').evaluate((el, value) => {
    el.value = String(value);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, ms);
  await waitForText(page, '#clock', new RegExp(`^${(ms / 1000).toFixed(3).replace('.', '\\.')} s /`));
  await nextFrame(page);
}

// Waits for the next animation frame.
export async function nextFrame(page) {
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => resolve())));
}

// One browser for a test file, launched before its tests and closed after them; returns
// `withExplorer` bound to it: `const withExplorer = explorerSession();`.
export function explorerSession() {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  return (query, shot, body) => withExplorer(browser, query, shot, body);
}
