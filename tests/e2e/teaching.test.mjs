// The explorer as a teaching tool: lesson mode pauses at each labelled event with its caption,
// the selected operation's consistency arithmetic is on screen, and the glossary defines the
// page's words. Screenshots go to RINGSIDE_E2E_SCREENSHOTS.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explorerSession, screenshotPath, seek, waitForText } from './support.mjs';

const TIMEOUT = { timeout: 90_000 };

const withExplorer = explorerSession();

test('lesson mode pauses at each labelled event, explains it and lights it', TIMEOUT, async () => {
  // core/presets/join-staged.toml: C crashes at 3 s (labelled, with a note), is back at 20 s.
  await withExplorer('?preset=join-staged&lesson=1', 'lesson', async (page) => {
    assert.equal(await page.locator('#lesson').isChecked(), true, 'the link turns lesson mode on');
    await page.selectOption('#speed', '5');
    await page.click('#play');
    const caption = await waitForText(page, '#caption', /C crashes/, 30_000);
    assert.match(caption, /hinted handoff is off/, caption);
    await waitForText(page, '#clock', /^3\.000 s/);
    assert.equal(await page.locator('#play').textContent(), '▶ Play', 'paused at the caption');
    await waitForText(page, '#inspector h3', /^C — /);
    await page.screenshot({ path: await screenshotPath('explorer-lesson-caption.png') });
    await page.click('#lesson-continue');
    await waitForText(page, '#caption', /C is back/, 30_000);
    await waitForText(page, '#clock', /^20\.000 s/);
    // Turning lesson mode off removes the caption and the link's flag.
    await page.click('#lesson');
    assert.equal(await page.locator('#caption').count(), 0);
    assert.doesNotMatch(await page.evaluate(() => location.search), /lesson=1/);
  });
});

test('the selected operation shows its consistency arithmetic', TIMEOUT, async () => {
  await withExplorer('?preset=join-staged&t=10000000', 'arithmetic', async (page) => {
    await page.locator('#history tr.op').first().waitFor();
    await page.locator('#history tr.op').first().click();
    const text = await waitForText(page, '#op-replicas', /^RF 3 → QUORUM needs \d (acks|replies) of /);
    assert.match(text, /asked .* · (acknowledged|answered) in time: .* [✓✗]$/, text);
    const ring = await waitForText(page, '#ring-arithmetic', /^QUORUM needs \d · \d (acked|replied) [✓✗]$/);
    assert.ok(ring.length > 0);
  });
});

test('the glossary defines RF, the levels, the status codes and the anomalies', TIMEOUT, async () => {
  await withExplorer('', 'glossary', async (page) => {
    await page.keyboard.press('?');
    const glossary = await page.locator('#glossary').textContent();
    for (const term of ['RF', 'QUORUM', 'ALL', 'UN, UJ, UL, DN', 'Stale read', 'Lost write', 'Hint']) {
      assert.ok(glossary.includes(term), `the glossary defines ${term}`);
    }
    assert.match(glossary, /RF\/2 \+ 1/);
    const status = await page.locator('#nodes th', { hasText: 'Status' }).getAttribute('title');
    assert.match(status, /nodetool/, 'the Status column carries its definition');
  });
});


test('forking the past names the interventions it dropped, and Undo brings them back', TIMEOUT, async () => {
  await withExplorer('?preset=join-staged', 'fork-undo', async (page) => {
    await page.locator('#ring g.node[data-name="B"]').waitFor();
    await seek(page, 5_000);
    await page.locator('table#nodes tr[data-name="B"]').click();
    await page.click('#act-crash');
    await waitForText(page, '#notice', /crash B: done/);
    // Back in time, another intervention forks the run: B's crash is dropped, and says so.
    await seek(page, 2_000);
    await page.locator('table#nodes tr[data-name="C"]').click();
    await page.click('#act-crash');
    const notice = await waitForText(page, '#notice', /forked here and dropped crash B at 5\.000 s/);
    assert.match(notice, /^crash C: done/, notice);
    assert.doesNotMatch(await page.evaluate(() => location.search), /crash:B/);
    await page.click('#undo-fork');
    await waitForText(page, '#notice', /undone/);
    const query = decodeURIComponent(await page.evaluate(() => location.search));
    assert.match(query, /5000000:crash:B/, query);
    assert.doesNotMatch(query, /crash:C/, query);
    assert.equal(await page.locator('#undo-fork').count(), 0);
  });
});

test('keyboard shortcuts keep working after the scrubber or a drop-down had focus', TIMEOUT, async () => {
  await withExplorer('?preset=join-staged', 'shortcuts-focus', async (page) => {
    await page.locator('#ring g.node[data-name="A"]').waitFor();
    await page.locator('#scrubber').click({ position: { x: 5, y: 5 } });
    const before = await page.locator('#clock').textContent();
    await page.keyboard.press('.');
    await page.keyboard.press('.');
    const after = await page.locator('#clock').textContent();
    assert.notEqual(after, before, 'Step (.) works with the scrubber focused');
    await page.selectOption('#speed', '1');
    await page.keyboard.press('?');
    await page.locator('#help-dialog').waitFor();
  });
});

test('the scenario builder sets up a situation, writes its file and puts it in the link', TIMEOUT, async () => {
  await withExplorer('', 'builder', async (page) => {
    await page.locator('#ring g.node[data-name="A"]').waitFor();
    await page.keyboard.press('g');
    await page.locator('#builder').waitFor();
    await page.selectOption('#b-nodes', '5');
    await page.selectOption('#b-rf', '3');
    await page.locator('input.b-down[data-node="B"]').check();
    await page.selectOption('#b-cl', 'ALL');
    const toml = await page.locator('#builder-toml').textContent();
    assert.match(toml, /nodes = \["A", "B", "C", "D", "E"\]/, toml);
    assert.match(toml, /crash = "B"/, toml);
    assert.match(toml, /write = \{ node = "A", key = "k1", value = "v1", cl = "ALL" \}/, toml);
    await page.click('#builder-run');
    await page.locator('#gallery').waitFor({ state: 'detached' });
    assert.equal(await page.locator('table#nodes tbody tr').count(), 5);
    assert.match(await page.evaluate(() => location.search), /scenario=/);
    // B is one of k1's three replicas or not: either way the run shows the request's outcome.
    await page.locator('#to-start').click();
    await page.locator('#scrubber').evaluate((el) => {
      el.value = '71000';
      el.dispatchEvent(new Event('input', { bubbles: true }));
    });
    const row = page.locator('#history tr.op', { hasText: 'k1' }).first();
    await row.waitFor();
    assert.match(await row.textContent(), /write k1=v1 @ALL/);
  });
});
