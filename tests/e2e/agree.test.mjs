// The explorer's panels agree: at any cursor the strategy lane of the animated run, the history's
// counts and the timeline's markers give the same numbers (one counting rule in ringside-core,
// compare::counted_at); the strategy chart explains itself (axes, legend, kinds told apart by
// colour and pattern, a cursor in view at 1280 px); and a stale read selected in the history
// shows its key's timeline with the write it missed. Each test leaves a screenshot in
// RINGSIDE_E2E_SCREENSHOTS (see support.mjs).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explorerSession, until, waitForText } from './support.mjs';

const TIMEOUT = { timeout: 90_000 };

const withExplorer = explorerSession();


// Waits until the checked full run (history counts, markers) and the lanes are computed.
async function settled(page) {
  await until(
    'the lanes are computed',
    () => page.evaluate(() => document.querySelector('#compare-time')?.dataset.ms ?? null),
    (ms) => ms !== null,
    45_000,
  );
  await waitForText(page, '#anomaly-summary', /^so far: /, 45_000);
}

// Seeks with the scrubber (value in ms) and waits until the clock shows the time.
async function seek(page, ms) {
  await page.locator('#scrubber').evaluate((el, value) => {
    el.value = String(value);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, ms);
  await waitForText(page, '#clock', new RegExp(`^${(ms / 1000).toFixed(3).replace('.', '\\.')} s /`));
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => resolve())));
}

const KINDS = ['stale', 'lost', 'unavailable', 'timeouts'];

// What each panel counts at the cursor `ms`, per kind.
async function counts(page, ms) {
  return page.evaluate((ms) => {
    const lane = document.querySelector('tr.lane.animated');
    const cell = (kind) => Number(lane?.querySelector(`td.${kind}`)?.textContent);
    const summary = document.querySelector('#anomaly-summary')?.textContent ?? '';
    const m = /^so far: (\d+) stale reads, (\d+) lost writes, (\d+) unavailable, (\d+) timeouts \(whole run: (\d+), (\d+), (\d+), (\d+)\)/.exec(summary);
    const markers = (cls) =>
      [...document.querySelectorAll(`.markers .marker.${cls}`)].filter((e) => Number(e.dataset.at) <= ms * 1000).length;
    return {
      lane: { stale: cell('stale'), lost: cell('lost'), unavailable: cell('unavailable'), timeouts: cell('timeouts') },
      history: m
        ? { stale: Number(m[1]), lost: Number(m[2]), unavailable: Number(m[3]), timeouts: Number(m[4]) }
        : summary,
      whole: m ? { stale: Number(m[5]), lost: Number(m[6]), unavailable: Number(m[7]), timeouts: Number(m[8]) } : null,
      markers: {
        stale: markers('stale'),
        lost: markers('lost'),
        unavailable: markers('unavailable'),
        timeouts: markers('timeout'),
      },
    };
  }, ms);
}

test('the lane, the history and the markers count the same anomalies at every cursor', TIMEOUT, async () => {
  // immediate reads stale from about 22 s, while E streams; the cursors fall inside seconds too,
  // where the lanes used to count the whole second ahead of the history.
  await withExplorer('?preset=join-immediate', 'agree-counts', async (page) => {
    await settled(page);
    const end = Number(await page.locator('#scrubber').evaluate((el) => el.max));
    const seen = [];
    for (const ms of [10_000, 22_900, 24_500, 27_250, 30_000, 33_333, 41_123, end]) {
      await seek(page, ms);
      seen.push({ ms, ...(await counts(page, ms)) });
    }
    // Stale reads first (the kind every version of the page shows), then every kind.
    const stale = seen.map(({ ms, lane, history, markers }) => `${ms} ms: lane ${lane.stale}, history ${history.stale}, markers ${markers.stale}`);
    assert.ok(
      seen.every((c) => c.lane.stale === c.history.stale && c.markers.stale === c.history.stale),
      `stale reads counted alike at every cursor:\n${stale.join('\n')}`,
    );
    for (const c of seen) {
      const all = JSON.stringify(c);
      assert.deepEqual(c.history, c.lane, `history and lane at ${c.ms} ms: ${all}`);
      assert.deepEqual(c.markers, c.lane, `markers and lane at ${c.ms} ms: ${all}`);
      for (const k of KINDS) assert.ok(c.whole[k] >= c.history[k], `${k} so far ≤ whole run at ${c.ms} ms`);
      if (c.ms === end) assert.deepEqual(c.whole, c.history, 'the whole run is what the end of the timeline counts');
    }
    const seenStale = seen.at(-1).lane.stale;
    assert.ok(seenStale > 0, 'the run reads stale: the counts compared are not all zero');
    // The lane's time to NORMAL never claims more than the run has lasted.
    const normal = await page.locator('tr.lane.animated td.normal').textContent();
    const secs = /^(\d+\.\d) s$/.exec(normal);
    if (secs) assert.ok(Number(secs[1]) <= (end - 22_000) / 1000, `to NORMAL ${normal}`);
  });
});

test('the strategy chart has axes, a legend, kinds told apart and its cursor in view at 1280 px', TIMEOUT, async () => {
  await withExplorer('?preset=join-immediate&t=30000000', 'agree-chart', async (page) => {
    await settled(page);
    const chart = page.locator('tr.lane[data-strategy="immediate"] svg.lane-chart');
    const labels = await chart.locator('text').allTextContents();
    assert.ok(labels.includes('per s'), `a count axis: ${labels}`);
    assert.ok(labels.includes('0 s') && labels.includes('60 s'), `a time axis in seconds: ${labels}`);
    assert.ok(labels.includes('0') && labels.some((l) => /^[1-9]\d*$/.test(l)), `count ticks: ${labels}`);
    await chart.locator('rect.bar.stale').first().waitFor();

    const legend = await page.locator('#lane-legend').textContent();
    for (const words of ['stale reads', 'lost writes', 'unavailable', 'timeouts', 'time cursor']) {
      assert.ok(legend.includes(words), `the legend names ${words}: ${legend}`);
    }
    // Each kind has its own fill: a colour for stale reads, a pattern for the others.
    const fills = await page.locator('#lane-legend rect.bar').evaluateAll((rects) =>
      rects.map((r) => getComputedStyle(r).fill),
    );
    assert.equal(new Set(fills).size, 4, `four different fills: ${fills}`);
    assert.equal(fills.filter((f) => f.startsWith('url(')).length, 3, `patterns: ${fills}`);

    // The cursor line is drawn at 30 s of 60, inside the window and the panel.
    const box = await page.evaluate(() => {
      const line = document.querySelector('tr.lane[data-strategy="immediate"] svg.lane-chart line.cursor');
      const r = line.getBoundingClientRect();
      const panel = document.querySelector('#lanes').getBoundingClientRect();
      const svg = line.ownerSVGElement.getBoundingClientRect();
      return { x: r.left + r.width / 2, height: r.height, panelRight: panel.right, svgLeft: svg.left, svgRight: svg.right, width: innerWidth };
    });
    assert.ok(box.height > 20, `the cursor line is drawn: ${JSON.stringify(box)}`);
    assert.ok(box.x > box.svgLeft && box.x < box.svgRight && box.svgRight <= box.panelRight + 1 && box.panelRight <= box.width,
      `the cursor is inside the chart, the chart inside the panel and the window: ${JSON.stringify(box)}`);
    const f = (box.x - box.svgLeft) / (box.svgRight - box.svgLeft);
    assert.ok(f > 0.45 && f < 0.65, `30 s of 60 is about the middle of the chart: ${f}`);
  });
});

test('a stale read selected in the history shows its key timeline with the write it missed', TIMEOUT, async () => {
  await withExplorer('?preset=join-immediate&t=40000000', 'agree-key-timeline', async (page) => {
    await settled(page);
    await page.check('#only-anomalies');
    const row = page.locator('#history table.ops tr.op', { hasText: 'stale read' }).first();
    await row.waitFor();
    const operation = await row.locator('td.op-text').textContent();
    const [key] = /k\d+/.exec(operation);
    await row.click();
    await page.locator('#key-timeline').waitFor();
    assert.equal(await page.locator('#key-timeline').getAttribute('data-key'), key);
    assert.match(await page.locator('#key-timeline h3').textContent(), new RegExp(`^Key ${key}: why this read is stale$`));

    // The row clicked stays listed, selected, though its completion is after the cursor now.
    await until('the selected row', () => page.locator('#history table.ops tr.op.selected').count(), (n) => n === 1);
    assert.equal(await page.locator('#history table.ops tr.op.selected td.op-text').textContent(), `read ${key} @QUORUM`);

    const intervals = await page.locator('#key-timeline g.interval').evaluateAll((gs) =>
      gs.map((g) => ({
        cls: g.getAttribute('class'),
        start: Number(g.dataset.start),
        end: g.dataset.end === undefined ? null : Number(g.dataset.end),
        x: [g.querySelector('rect').getBoundingClientRect().left, g.querySelector('rect').getBoundingClientRect().right],
      })),
    );
    const flagged = intervals.filter((i) => /\bflagged\b/.test(i.cls));
    const missed = intervals.filter((i) => /\bmissed\b/.test(i.cls));
    assert.equal(flagged.length, 1, JSON.stringify(intervals));
    assert.match(flagged[0].cls, /\bread\b/);
    assert.ok(missed.length >= 1, `the write it missed is drawn: ${JSON.stringify(intervals)}`);
    for (const w of missed) {
      assert.match(w.cls, /\bwrite\b/);
      // The checker's rule, drawn: the write was acknowledged before the read was invoked.
      assert.ok(w.end !== null && w.end <= flagged[0].start, `acked before the read began: ${JSON.stringify(w)}`);
      assert.ok(w.x[1] <= flagged[0].x[0] + 0.5, `and drawn to its left: ${JSON.stringify([w, flagged[0]])}`);
    }
    const guides = await page.locator('#key-timeline text.guide-label').allTextContents();
    assert.ok(guides.includes('read invoked') && guides.some((g) => / acked$/.test(g)), `guides: ${guides}`);
    assert.match(await page.locator('#key-timeline .key-explanation').textContent(), /missed (\d+ )?writes?\b/);
  });
});

test('history rows are in invocation order and a timeout is called a timeout', TIMEOUT, async () => {
  await withExplorer('?preset=join-immediate&t=30000000', 'agree-history-order', async (page) => {
    await settled(page);
    const rows = await page.locator('#history table.ops tr.op').evaluateAll((rs) =>
      rs.map((r) => ({ invoke: Number(r.dataset.invoke), result: r.cells[3].textContent })),
    );
    assert.ok(rows.length > 10, `rows: ${rows.length}`);
    for (let i = 1; i < rows.length; i++) {
      assert.ok(rows[i - 1].invoke > rows[i].invoke, `newest invoked first: ${JSON.stringify(rows.slice(i - 1, i + 1))}`);
    }
    for (const r of rows) assert.ok(!['info', 'fail'].includes(r.result), `an outcome in words: ${r.result}`);
    assert.match(await page.locator('#lanes thead').textContent(), /timeouts/);
    assert.match(await page.locator('#marker-legend').textContent(), /timeout/);
  });
});
