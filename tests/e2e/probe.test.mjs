// The explorer's determinism probe: the trace hash computed in WebAssembly for a seed must be
// exactly the one native code computes (RINGSIDE_NATIVE_HASHES, from xtask).

import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { launchBrowser, nativeHash, openExplorer, screenshotPath, waitForText } from './support.mjs';

const HASH = /^[0-9a-f]{16}$/;
const U64_MAX = '18446744073709551615';
const TIMEOUT = { timeout: 60_000 };

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test('the explorer loads and shows the trace hash of the default seed', TIMEOUT, async () => {
  const { page, problems, close } = await openExplorer(browser);
  try {
    assert.equal(await page.title(), 'Ringside explorer');
    assert.equal(await page.locator('h1').textContent(), 'Ringside explorer');
    await waitForText(page, 'section.probe h2', 'Determinism probe');
    const hash = await waitForText(page, '#trace-hash', HASH);
    assert.equal(await page.inputValue('#seed'), '42');
    assert.equal(hash, nativeHash(42), 'the default seed 42 hashes as natively');
    assert.equal(await page.locator('section.probe .error').count(), 0, 'no error for a valid seed');
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('?seed=7 and typed seeds show exactly the native hashes', TIMEOUT, async () => {
  const { page, problems, close } = await openExplorer(browser, '?seed=7');
  try {
    assert.equal(await page.inputValue('#seed'), '7');
    await waitForText(page, '#trace-hash', nativeHash(7));

    await page.fill('#seed', '1234');
    await waitForText(page, '#trace-hash', nativeHash(1234));

    // The largest seed: u64 all the way through, no float rounding on the way to wasm.
    await page.fill('#seed', U64_MAX);
    await waitForText(page, '#trace-hash', nativeHash(U64_MAX));
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('an invalid seed shows the error and no hash', TIMEOUT, async () => {
  const { page, problems, close } = await openExplorer(browser, '?seed=7');
  try {
    await waitForText(page, '#trace-hash', nativeHash(7));
    for (const invalid of ['seven', '-1', '18446744073709551616']) {
      await page.fill('#seed', invalid);
      const error = await waitForText(page, 'section.probe .error', /whole number/);
      assert.match(error, new RegExp(`from 0 to ${U64_MAX}`), `error text for ${invalid}`);
      assert.equal(await page.locator('#trace-hash').textContent(), '', `no hash for ${invalid}`);
    }
    // A valid seed again clears the error.
    await page.fill('#seed', '1234');
    await waitForText(page, '#trace-hash', nativeHash(1234));
    assert.equal(await page.locator('section.probe .error').count(), 0);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('screenshot of the probe', TIMEOUT, async () => {
  const { page, problems, close } = await openExplorer(browser, '?seed=7');
  try {
    await waitForText(page, '#trace-hash', nativeHash(7));
    const file = await screenshotPath('probe.png');
    await page.screenshot({ path: file, fullPage: true });
    const { size } = await stat(file);
    assert.ok(size > 5_000, `${file} is only ${size} bytes`);
    console.log(`screenshot: ${file}`);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});
