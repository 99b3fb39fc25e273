// The explorer as a user sees it: the default scenario, playing and stepping, scrubbing back and
// forth, interventions by clicking, the strategy lanes, shared links, bad links and scenarios, and
// the history pane. Each test asserts what the page shows and leaves a screenshot in
// RINGSIDE_E2E_SCREENSHOTS (see support.mjs).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  explorerSession,
  fixture,
  nextFrame,
  screenshotPath,
  seek,
  until,
  waitForText,
  WAIT_MS,
} from './support.mjs';

const TIMEOUT = { timeout: 60_000 };

// The default preset (core/presets/join-staged.toml): A–D with 4 vnodes each; E joins at 22 s.
const DEFAULT_TITLE = 'Add a node (staged)';
const DEFAULT_NODES = ['A', 'B', 'C', 'D'];
const DEFAULT_TOKENS = 4;
const DEFAULT_LANES = ['staged', 'immediate', 'dual-write-cutover'];
const ALL_STRATEGIES = [
  'staged',
  'pending-ranges',
  'immediate',
  'dual-write-cutover',
  'stream-then-cutover',
  'sync-dual-write',
];
const STATUSES = /^(UN|UJ|UL|DN|DJ|DL|LEFT|OUT|\?)$/;

const withExplorer = explorerSession();


// Waits until the checked full run (history, anomaly summary) and the lanes are computed.
async function settled(page, lanes = null) {
  await until(
    'the lanes are computed',
    () =>
      page.evaluate(() => {
        const time = document.querySelector('#compare-time');
        return { ms: time?.dataset.ms ?? null, text: time?.textContent ?? '' };
      }),
    ({ ms, text }) =>
      ms !== null && /lanes? of \d+ s computed in/.test(text) &&
      (lanes === null || text.startsWith(`${lanes} lane`)),
    45_000,
  );
  await waitForText(page, '#anomaly-summary', /^so far: /, 45_000);
}

// The simulated time the timeline's clock shows, in ms ("12.345 s / 60 s").
async function clockMs(page) {
  const text = await page.locator('#clock').textContent();
  const match = /^(\d+\.\d{3}) s \/ (\d+) s$/.exec(text ?? '');
  assert.ok(match, `#clock shows ${JSON.stringify(text)}`);
  return Math.round(Number(match[1]) * 1000);
}

// The cursor the page wrote into the URL (`t=` in µs; absent at 0).
async function urlMicros(page) {
  const href = await page.evaluate(() => location.href);
  return Number(new URL(href).searchParams.get('t') ?? 0);
}

// The node table as text, one line per row, cells separated by " | ".
async function nodeTable(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('table#nodes tbody tr')]
      .map((row) => [...row.cells].map((cell) => cell.textContent.trim()).join(' | '))
      .join('\n'),
  );
}

// A node's status on its badge and in the table.
async function statusOf(page, name) {
  return page.evaluate((name) => {
    const badge = document.querySelector(`svg#ring g.node[data-name="${name}"]`);
    const row = document.querySelector(`table#nodes tbody tr[data-name="${name}"]`);
    return {
      badge: badge?.getAttribute('data-status') ?? null,
      down: badge?.classList.contains('down') ?? null,
      table: row?.querySelector('td.status')?.textContent ?? null,
    };
  }, name);
}

async function badges(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('svg#ring g.node')].map((g) => ({
      name: g.getAttribute('data-name'),
      status: g.getAttribute('data-status'),
    })),
  );
}

// The counters of each strategy lane: { staged: { stale, lost, errors }, ... }.
async function laneCounters(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('tr.lane')].map((row) => [
        row.getAttribute('data-strategy'),
        {
          stale: Number(row.querySelector('td.stale')?.textContent),
          lost: Number(row.querySelector('td.lost')?.textContent),
          errors: Number(row.querySelector('td.errors')?.textContent),
          text: [...row.cells].slice(0, 7).map((c) => c.textContent.trim()).join(' | '),
        },
      ]),
    ),
  );
}

// Everything a shared link must reproduce.
async function visibleState(page) {
  return {
    title: await page.locator('#scenario-title').textContent(),
    clock: await page.locator('#clock').textContent(),
    nodes: await nodeTable(page),
    badges: await badges(page),
    summary: await page.locator('#anomaly-summary').textContent(),
  };
}

test('the default page shows the staged join scenario: ring, nodes, lanes', TIMEOUT, async () => {
  await withExplorer('', 'default', async (page) => {
    await waitForText(page, '#scenario-title', DEFAULT_TITLE);
    await settled(page, DEFAULT_LANES.length);

    const shown = await badges(page);
    assert.deepEqual(
      shown.map((b) => b.name),
      DEFAULT_NODES,
      'one badge per node of the preset',
    );
    for (const b of shown) assert.match(b.status, STATUSES, `badge ${b.name} has a status`);
    assert.deepEqual(
      shown.map((b) => b.status),
      ['UN', 'UN', 'UN', 'UN'],
      'every node is up and normal at the start',
    );
    assert.equal(
      await page.locator('svg#ring path.arc').count(),
      DEFAULT_NODES.length * DEFAULT_TOKENS,
      'one arc per vnode',
    );
    const owners = await page.locator('svg#ring path.arc').evaluateAll((arcs) =>
      arcs.map((a) => a.getAttribute('data-owner')),
    );
    for (let id = 0; id < DEFAULT_NODES.length; id++) {
      assert.equal(
        owners.filter((o) => o === String(id)).length,
        DEFAULT_TOKENS,
        `node ${DEFAULT_NODES[id]} owns ${DEFAULT_TOKENS} arcs`,
      );
    }
    assert.equal(await page.locator('svg#ring path.pending').count(), 0, 'nothing pending');

    const rows = await nodeTable(page);
    const lines = rows.split('\n');
    assert.equal(lines.length, DEFAULT_NODES.length, rows);
    for (const [i, name] of DEFAULT_NODES.entries()) {
      // Status | Node | Load | Tokens | Owns | Hints | Streaming
      const cells = lines[i].split(' | ');
      assert.equal(cells[0], 'UN', lines[i]);
      assert.equal(cells[1], name, lines[i]);
      assert.match(cells[2], /^\d+ keys/, lines[i]);
      assert.equal(cells[3], String(DEFAULT_TOKENS), lines[i]);
      assert.match(cells[4], /^\d+\.\d%$/, `owns is a percentage: ${lines[i]}`);
      assert.equal(cells[5], '0', `no hints: ${lines[i]}`);
    }
    await waitForText(page, '#clock', '0.000 s / 60 s');
    assert.equal(await page.locator('#play').textContent(), '▶ Play');
    await waitForText(page, 'svg#ring text.clock', '0.000 s');

    const lanes = await page.locator('tr.lane').evaluateAll((rows) =>
      rows.map((r) => ({
        strategy: r.getAttribute('data-strategy'),
        animated: r.classList.contains('animated'),
      })),
    );
    assert.deepEqual(
      lanes.map((l) => l.strategy),
      DEFAULT_LANES,
      'the three lanes of a join preset',
    );
    assert.deepEqual(
      lanes.filter((l) => l.animated).map((l) => l.strategy),
      ['staged'],
      'the animated lane is the scenario strategy',
    );
    const ms = Number(await page.locator('#compare-time').getAttribute('data-ms'));
    assert.ok(ms > 0 && Number.isFinite(ms), `#compare-time data-ms = ${ms}`);
    assert.match(
      await page.locator('#compare-time').textContent(),
      /^3 lanes of 60 s computed in \d+\.\d\d s$/,
    );
    assert.equal(await page.locator('#load-error').count(), 0, 'no load error');
  });
});

test('playing the hints preset: C goes down, hints pile up, messages fly', TIMEOUT, async () => {
  await withExplorer('', 'hints', async (page) => {
    await settled(page);
    await page.click('#open-gallery');
    await page.locator('#gallery').waitFor();
    assert.equal(await page.locator('#gallery button.card').count(), 11, 'eleven presets');
    await page.click('#gallery button.card[data-preset="hints"]');
    await page.locator('#gallery').waitFor({ state: 'detached' });
    await waitForText(page, '#scenario-title', 'Hinted handoff');
    await waitForText(page, '#clock', '0.000 s / 50 s');
    await settled(page, 1);

    await page.selectOption('#speed', '5');
    await page.click('#play');
    await waitForText(page, '#play', '⏸ Pause');
    await until('the clock passes 12 s', () => clockMs(page), (ms) => ms > 12_000, 30_000);
    await page.click('#play');
    await waitForText(page, '#play', '▶ Play');
    // The clock's text follows the last frame's snapshot; let that frame be drawn first.
    await nextFrame(page);
    const pausedAt = await clockMs(page);
    assert.ok(pausedAt > 12_000 && pausedAt < 28_000, `paused at ${pausedAt} ms, C restarts at 28 s`);
    // Pausing records the cursor in the URL.
    assert.equal(Math.floor((await urlMicros(page)) / 1000), pausedAt, 'the URL holds the cursor');

    assert.deepEqual(await statusOf(page, 'C'), { badge: 'DN', down: true, table: 'DN' }, 'C crashed at 8 s');
    for (const name of ['A', 'B', 'D']) {
      assert.deepEqual(await statusOf(page, name), { badge: 'UN', down: false, table: 'UN' }, name);
    }
    const hints = await page.evaluate(() =>
      Object.fromEntries(
        [...document.querySelectorAll('table#nodes tbody tr')].map((r) => [
          r.getAttribute('data-name'),
          r.cells[5].textContent.trim(),
        ]),
      ),
    );
    const holding = Object.entries(hints).filter(([, text]) => text !== '0');
    assert.ok(holding.length > 0, `some node holds hints: ${JSON.stringify(hints)}`);
    for (const [name, text] of holding) {
      assert.match(text, /^[1-9]\d* \(\d+→C\)$/, `${name} holds hints for C`);
    }
    assert.equal(hints.C, '0', 'the down node holds none');

    // Slowly, the messages in flight are drawn.
    await page.selectOption('#speed', '0.1');
    await page.click('#play');
    let most = 0;
    const kinds = new Set();
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline) {
      const seen = await page.locator('svg#ring g.messages circle.msg').evaluateAll((cs) =>
        cs.map((c) => c.getAttribute('class')),
      );
      most = Math.max(most, seen.length);
      for (const c of seen) kinds.add(c.split(' ')[1]);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await page.click('#play');
    assert.ok(most > 0, 'messages were drawn while playing');
    assert.ok(!kinds.has('gossip'), `gossip is hidden by default, drawn: ${[...kinds]}`);
    const after = await clockMs(page);
    assert.ok(after > pausedAt && after < pausedAt + 2_000, `0.1× for ~3 s: ${pausedAt} → ${after} ms`);
  });
});

// Steps `count` times with `how` and checks that each one moves the cursor forward (the `t=` the
// page writes into the URL, in µs: a step can be shorter than the clock's millisecond) and that
// the clocks follow it. Returns the cursor.
async function stepForward(page, how, count, from) {
  let previous = from;
  for (let i = 0; i < count; i++) {
    await how();
    const micros = await until(
      `${how.name}: the cursor moves forward from ${previous} µs`,
      () => urlMicros(page),
      (t) => t > previous,
      3_000,
    );
    await nextFrame(page);
    // Both clocks round the cursor to the millisecond.
    const shown = `${(micros / 1e6).toFixed(3)} s`;
    await waitForText(page, '#clock', new RegExp(`^${shown.replace('.', '\\.')} / 60 s$`));
    const ring = await page.locator('svg#ring text.clock').textContent();
    assert.equal(ring, shown, `the ring's clock at ${micros} µs`);
    previous = micros;
  }
  return previous;
}

test('stepping moves the cursor forward a little at a time, by button and by keyboard', TIMEOUT, async () => {
  await withExplorer('?t=500000', 'step', async (page) => {
    await settled(page);
    await waitForText(page, '#clock', '0.500 s / 60 s');
    let at = await urlMicros(page);
    assert.equal(at, 500_000);
    at = await stepForward(page, async function stepButton() {
      await page.click('#step');
    }, 6, at);
    at = await stepForward(page, async function dotKey() {
      await page.keyboard.press('.');
    }, 3, at);
    at = await stepForward(page, async function rightArrow() {
      await page.keyboard.press('ArrowRight');
    }, 2, at);
    assert.ok(at < 1_500_000, `11 steps stay within a second: ${at} µs`);
    assert.equal(await page.locator('#play').textContent(), '▶ Play', 'stepping leaves it paused');
    // ← goes back 100 ms.
    await page.keyboard.press('ArrowLeft');
    await until('← moves back 100 ms', () => urlMicros(page), (t) => t === at - 100_000);
  });
});

test('Step works on a freshly loaded page (cursor at 0 s)', TIMEOUT, async () => {
  await withExplorer('', 'step-at-start', async (page) => {
    await settled(page);
    await waitForText(page, '#clock', '0.000 s / 60 s');
    let at = await stepForward(page, async function stepButton() {
      await page.click('#step');
    }, 3, 0);
    at = await stepForward(page, async function dotKey() {
      await page.keyboard.press('.');
    }, 2, at);
    assert.ok(at < 1_000_000, `5 steps from the start stay within a second: ${at} µs`);
  });
});

test('scrubbing back and forth shows the same cluster at the same time', TIMEOUT, async () => {
  await withExplorer('', 'scrub', async (page) => {
    await settled(page);
    await seek(page, 30_000);
    await waitForText(page, '#clock', '30.000 s / 60 s');
    const at30 = {
      table: await nodeTable(page),
      badges: await badges(page),
      arcs: await page.locator('path.arc').count(),
      pending: await page.locator('path.pending').count(),
    };
    // join-staged: E joins at 22 s and is still joining at 30 s (the preset's own expectation).
    assert.deepEqual(
      at30.badges.map((b) => `${b.name}=${b.status}`),
      ['A=UN', 'B=UN', 'C=UN', 'D=UN', 'E=UJ'],
      at30.table,
    );
    assert.match(at30.table.split('\n')[4], /^UJ \| E \| .* \| \? \| /, 'E owns "?" while joining');
    assert.ok(at30.pending > 0, 'E has pending ranges while joining');

    await seek(page, 8_000);
    await waitForText(page, '#clock', '8.000 s / 60 s');
    const at5 = await nodeTable(page);
    assert.notEqual(at5, at30.table, 'the table differs at 8 s');
    assert.deepEqual(
      (await badges(page)).map((b) => `${b.name}=${b.status}`),
      ['A=UN', 'B=UN', 'C=DN', 'D=UN'],
      `C, crashed at 3 s, is convicted by 6 s and down until 20 s; E not there yet:\n${at5}`,
    );
    assert.equal(await page.locator('path.arc').count(), 16);
    assert.equal(await page.locator('path.pending').count(), 0);

    await seek(page, 30_000);
    assert.equal(await nodeTable(page), at30.table, 'the same table at 30 s after seeking back and forth');
    assert.deepEqual(await badges(page), at30.badges);
    assert.equal(await page.locator('path.arc').count(), at30.arcs);
    assert.equal(await page.locator('path.pending').count(), at30.pending);
    assert.equal(await urlMicros(page), 30_000_000, 'seeking records the cursor in the URL');
  });
});

test('crashing and restarting a node by clicking it', TIMEOUT, async () => {
  await withExplorer('', 'crash', async (page) => {
    await settled(page);
    // Before the workload starts (1 s) nothing but hidden gossip is in flight, so no message
    // covers the badge.
    await seek(page, 500);
    await page.locator('svg#ring g.node[data-name="B"]').click();
    await until(
      'B is selected',
      () => page.locator('svg#ring g.node[data-name="B"]').getAttribute('class'),
      (c) => c.split(' ').includes('selected'),
    );
    await waitForText(page, '#inspector h3', 'B — UN');
    assert.match(await page.locator('#explain').textContent(), /\S/, 'the node is explained');
    assert.equal(await page.locator('table#nodes tr[data-name="B"]').getAttribute('class'), 'selected');
    await page.click('#act-crash');
    // The crash shows at once (the badge is drawn down); the status letter only once the
    // others' failure detectors convict B, as `status` would print it.
    await until('B is drawn down', () => statusOf(page, 'B'), (s) => s.down);
    assert.deepEqual(await statusOf(page, 'B'), { badge: 'UN', down: true, table: 'UN' });
    assert.equal(await page.locator('#notice').getAttribute('class'), 'notice ok');
    assert.match(await page.locator('#notice').textContent(), /crash B: done/);
    const href = await page.evaluate(() => location.href);
    const params = new URL(href).searchParams;
    assert.equal(params.get('do'), '500000:crash:B', href);
    assert.equal(params.get('preset'), 'join-staged', href);
    await page.locator('.marker.user').first().waitFor({ timeout: WAIT_MS });

    // Time passes: the others convict B (by 7 s), then it comes back.
    await seek(page, 8_000);
    assert.deepEqual(await statusOf(page, 'B'), { badge: 'DN', down: true, table: 'DN' }, 'convicted by 8 s');
    // B stays selected: the inspector now offers to restart it.
    await waitForText(page, '#inspector h3', 'B — DN');
    await page.click('#act-restart');
    await waitForText(page, '#notice', /restart B: done/);
    assert.equal(await page.locator('#notice').getAttribute('class'), 'notice ok');
    await seek(page, 9_000);
    await until('B is back up', () => statusOf(page, 'B'), (s) => s.badge === 'UN' && s.table === 'UN');
    assert.equal((await statusOf(page, 'B')).down, false);
    await page.locator('#act-crash').waitFor({ timeout: WAIT_MS });
    assert.equal(
      new URL(await page.evaluate(() => location.href)).searchParams.get('do'),
      '500000:crash:B,8000000:restart:B',
    );
    assert.equal(await page.locator('.marker.user').count(), 2, 'a marker per intervention');

    // A refused action says so and changes nothing: a second node called A.
    const table = await nodeTable(page);
    await page.fill('#add-name', 'A');
    await page.click('#add-go');
    const refusal = await waitForText(page, '#notice', /add node A: refused/);
    assert.equal(await page.locator('#notice').getAttribute('class'), 'notice refused', refusal);
    assert.equal(await nodeTable(page), table, 'nothing changed');
    assert.equal(
      new URL(await page.evaluate(() => location.href)).searchParams.get('do'),
      '500000:crash:B,8000000:restart:B',
      'a refused action is not recorded',
    );
  });
});

test('six strategy lanes: staged stays correct where immediate reads stale', TIMEOUT, async () => {
  await withExplorer('?preset=join-immediate', 'lanes', async (page) => {
    await waitForText(page, '#scenario-title', 'Add a node (immediate)');
    await settled(page, 3);
    assert.equal(await page.locator('tr.lane.animated').getAttribute('data-strategy'), 'immediate');
    for (const strategy of ALL_STRATEGIES) {
      const box = page.locator(`input.lane-choice[data-strategy="${strategy}"]`);
      if (!(await box.isChecked())) {
        await box.check();
        await settled(page);
      }
    }
    await settled(page, 6);
    await until('six lanes', () => page.locator('tr.lane').count(), (n) => n === 6);
    assert.deepEqual(
      await page.locator('tr.lane').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-strategy'))),
      ALL_STRATEGIES,
    );
    assert.equal(await page.locator('svg.lane-chart').count(), 6);
    assert.match(
      await page.evaluate(() => location.href),
      /compare=staged,pending-ranges,immediate,dual-write-cutover,stream-then-cutover,sync-dual-write/,
      'the lanes are in the URL',
    );

    // Before E joins (22 s) no lane has a stale read.
    await seek(page, 10_000);
    const early = await laneCounters(page);
    for (const s of ALL_STRATEGIES) assert.equal(early[s].stale, 0, `${s} at 10 s: ${early[s].text}`);

    const end = Number(await page.locator('#scrubber').evaluate((el) => el.max));
    assert.equal(end, 60_000);
    await seek(page, end);
    const last = await laneCounters(page);
    assert.equal(last.staged.stale, 0, `staged never reads stale: ${last.staged.text}`);
    assert.equal(last.staged.lost, 0, `staged loses nothing: ${last.staged.text}`);
    assert.ok(last.immediate.stale > 0, `immediate reads stale: ${last.immediate.text}`);
    assert.equal(last.immediate.lost, 0, `nothing is lost in the end: ${last.immediate.text}`);
    assert.match(
      await page.locator('tr.lane[data-strategy="immediate"] td.stale').getAttribute('class'),
      /\bbad\b/,
      'a non-zero count is marked bad',
    );
    assert.notDeepEqual(
      Object.values(early).map((l) => l.text),
      Object.values(last).map((l) => l.text),
      'the counters follow the cursor',
    );
    // The animated run is immediate: its own history agrees with its lane.
    const summary = await page.locator('#anomaly-summary').textContent();
    const soFar = Number(/^so far: (\d+) stale reads/.exec(summary)?.[1]);
    assert.equal(soFar, last.immediate.stale, `history and lane agree: ${summary}`);
    await page.locator('tr.lane[data-strategy="immediate"] svg.lane-chart rect.bar.stale').first().waitFor();
  });
});

test('a shared link replays the same run at the same time', TIMEOUT, async () => {
  let href;
  let shown;
  await withExplorer('?preset=join-immediate', 'share-source', async (page) => {
    await settled(page);
    await seek(page, 24_000);
    await page.locator('table#nodes tr[data-name="A"]').click();
    await waitForText(page, '#inspector h3', /^A — /);
    await page.click('#act-crash');
    await waitForText(page, '#notice', /crash A: done/);
    await settled(page);
    await seek(page, 33_250);
    await page.click('#step');
    await until('the URL has the stepped cursor', () => urlMicros(page), (t) => t > 33_250_000);
    await settled(page);
    href = await page.evaluate(() => location.href);
    assert.match(href, /[?&]do=24000000:crash:A(&|$)/, href);
    assert.match(href, /[?&]t=\d+/, href);
    shown = await visibleState(page);
    assert.equal(shown.badges.find((b) => b.name === 'A')?.status, 'DN', 'A is down');
  });
  const query = new URL(href).search;
  await withExplorer(query, 'share-opened', async (page) => {
    await settled(page);
    assert.deepEqual(await visibleState(page), shown, `${query} shows what its author saw`);
    assert.equal(await page.evaluate(() => location.href), href, 'the link is unchanged');
    assert.equal(await page.locator('#load-error').count(), 0);
  });
});

test('a bad link shows an error and the default scenario', TIMEOUT, async () => {
  for (const [query, mention] of [
    ['?seed=abc', /seed "abc"/],
    ['?do=1:explode', /explode/],
  ]) {
    await withExplorer(query, `bad-link-${query.replace(/\W+/g, '')}`, async (page) => {
      const banner = await waitForText(page, '#load-error', mention);
      assert.match(banner, /could not be replayed/, banner);
      await waitForText(page, '#scenario-title', DEFAULT_TITLE);
      await settled(page, 3);
      assert.deepEqual((await badges(page)).map((b) => b.name), DEFAULT_NODES);
      assert.equal(await page.locator('svg#ring path.arc').count(), 16);
      await page.screenshot({
        path: await screenshotPath(`explorer-bad-link-${query.replace(/\W+/g, '')}-banner.png`),
      });
      // The banner can be dismissed.
      await page.click('#load-error button');
      await page.locator('#load-error').waitFor({ state: 'detached' });
    });
  }
});

test('a broken pasted scenario shows what is wrong and keeps the current run', TIMEOUT, async () => {
  await withExplorer('', 'bad-scenario', async (page) => {
    await settled(page);
    await page.keyboard.press('g');
    await page.locator('#gallery').waitFor();
    // A scenario whose replication factor is text.
    const broken = await fixture('rf-is-text.toml');
    await page.fill('#scenario-text', broken);
    await page.click('#scenario-run');
    const error = await waitForText(page, '#scenario-error', /\S/);
    assert.match(error, /"three"/, `the error names the problem: ${error}`);
    assert.match(error, /line 4/, `the error points at the line: ${error}`);
    assert.equal(await page.locator('#gallery').count(), 1, 'the gallery stays open to fix it');

    // Unparseable TOML says so too.
    await page.fill('#scenario-text', '[cluster\nnodes = ');
    await page.click('#scenario-run');
    const syntax = await until(
      'the error of the new text',
      () => page.locator('#scenario-error').textContent(),
      (text) => text !== error,
    );
    assert.match(syntax, /line 1/, `a syntax error says where: ${syntax}`);
    await page.screenshot({ path: await screenshotPath('explorer-bad-scenario-error.png') });
    console.log(`scenario errors: ${JSON.stringify(error)}, ${JSON.stringify(syntax)}`);

    await page.keyboard.press('Escape');
    await page.locator('#gallery').waitFor({ state: 'detached' });
    assert.equal(await page.locator('#scenario-title').textContent(), DEFAULT_TITLE, 'the run is unchanged');
    assert.equal(await page.locator('#load-error').count(), 0);
  });
});

test('clicking an operation in the history jumps to it, lights its messages and replicas', TIMEOUT, async () => {
  await withExplorer('', 'history', async (page) => {
    await settled(page);
    await seek(page, 10_000);
    const rows = page.locator('#history table.ops tr.op');
    await until('history rows before the cursor', () => rows.count(), (n) => n > 0);
    const times = await rows.evaluateAll((rs) => rs.map((r) => r.cells[0].textContent));
    const seconds = times.map((t) => Number(t.replace(' s', '')));
    assert.ok(seconds.every((s) => s <= 10), `only operations before the cursor: ${times}`);

    // The newest write.
    const row = page.locator('#history table.ops tr.op', { hasText: 'write' }).first();
    const [invoked, operation] = await row.evaluate((r) => [r.cells[0].textContent, r.cells[2].textContent]);
    await row.click();
    await waitForText(page, '#clock', new RegExp(`^${invoked.replace(' s', '').replace('.', '\\.')} s /`));
    assert.equal(await page.locator('#play').textContent(), '▶ Play', 'it pauses');
    const [key] = /k\d+/.exec(operation);
    await waitForText(page, '#inspector h3', new RegExp(`^client \\d+ write ${key} at QUORUM via [A-E]$`));
    const replicas = await waitForText(
      page,
      '#op-replicas',
      // The consistency arithmetic: the level's needs, whom the coordinator asked, who acked.
      /^RF 3 → QUORUM needs \d acks of [A-E](, [A-E])*( \(\+\d for pending [A-E](, [A-E])*\))? · asked [A-E](, [A-E])* · acknowledged in time: [A-E](, [A-E])* [✓✗]$/,
    );
    const answered = await page
      .locator('svg#ring g.node.answered')
      .evaluateAll((gs) => gs.map((g) => g.getAttribute('data-name')));
    const lit = await page.locator('svg#ring circle.msg.lit').count();
    assert.ok(answered.length + lit > 0, `lit messages (${lit}) or answered replicas (${answered})`);
    assert.equal(
      answered.join(', '),
      /acknowledged in time: (.*) [✓✗]$/.exec(replicas)[1],
      'the badges of the replicas that answered are marked',
    );
    assert.ok(lit > 0, 'its messages in flight are lit');
    await page.click('#step');
    await waitForText(page, '#op-replicas', replicas);
  });
});

test("a message explains the epoch a request carries and the replica's verdict", TIMEOUT, async () => {
  // The default preset fences: E joins at 22 s, and around 22.8 s replicas that already know
  // E's epoch refuse reads and mints that coordinators planned under the older one.
  const [before, after] = [22_770, 23_000]; // every message in flight at 22.77 s is in by 23 s
  await withExplorer(`?preset=join-staged&t=${before * 1000}`, 'fenced', async (page) => {
    await settled(page);
    const explain = page.locator('#explain');
    // Messages move only when time does: clicking by dispatch is not fooled by an overlap.
    const click = (selector) => page.locator(selector).first().dispatchEvent('click');

    // A Rejected in flight says what was refused and why.
    await seek(page, 22_800);
    await click('svg#ring circle.msg[data-name="Rejected"]');
    const rejected = await waitForText(
      page,
      '#explain',
      /^([A-E]) refuses ([A-E])'s (Read|Mint|Mutation|Hint): it was planned under topology epoch (\d+), but \1 knows epoch (\d+) \(stale epoch\)\. The refusal carries \1's endpoint states, so \2 catches up and /,
    );
    const [, , , , carried, known] = /^([A-E]) refuses ([A-E])'s (\w+): it was planned under topology epoch (\d+), but \1 knows epoch (\d+)/.exec(rejected);
    assert.ok(Number(known) > Number(carried), rejected);
    assert.match(
      new URL(await page.evaluate(() => location.href)).searchParams.get('msg') ?? '',
      /^\d+$/,
      'the selected message is in the link',
    );

    // Requests in flight at 22.77 s: each carries its epoch; once in, the replica's verdict.
    await seek(page, before);
    const requests = await page
      .locator('svg#ring circle.msg')
      .evaluateAll((cs) =>
        cs.filter((c) => ['Read', 'Mint', 'Mutation'].includes(c.dataset.name)).map((c) => c.dataset.id),
      );
    assert.ok(requests.length > 0, 'requests in flight');
    const verdicts = {};
    for (const id of requests) {
      await seek(page, before);
      await click(`svg#ring circle.msg[data-id="${id}"]`);
      await waitForText(
        page,
        '#explain',
        /It carries topology epoch \d+, the placement it was planned under: [A-E] refuses it if it knows a newer one\.$/,
      );
      assert.equal(await explain.getAttribute('data-fate'), 'in-flight');
      await seek(page, after);
      const fate = await explain.getAttribute('data-fate');
      verdicts[fate] ??= { id, text: await explain.textContent() };
      if (verdicts.refused && verdicts.delivered) break;
    }
    assert.deepEqual(Object.keys(verdicts).sort(), ['delivered', 'refused'], JSON.stringify(verdicts));
    assert.match(verdicts.delivered.text, /It carries topology epoch \d+, [^.]*\. [A-E] accepted it\.$/);
    assert.match(
      verdicts.refused.text,
      /It carries topology epoch (\d+), [^.]*\. ([A-E]) refused it: it knows epoch (\d+) \(stale epoch\) — [A-E] catches up from the refusal and /,
    );

    // Leave the refused one on screen for the screenshot.
    await seek(page, before);
    await click(`svg#ring circle.msg[data-id="${verdicts.refused.id}"]`);
    await seek(page, after);
    await waitForText(page, '#explain', verdicts.refused.text);
    assert.match(await page.locator('#inspector p.meta').textContent(), /delivered, refused · epoch \d+/);
  });
});

test('"anomalies only" lists exactly the operations the checker flagged', TIMEOUT, async () => {
  // The immediate strategy reads stale while its joiner is empty (the default run has no
  // anomaly any more: its timeouts, a mint asked of a crashed but unconvicted replica, are
  // gone since the mint falls back to the next replica).
  await withExplorer('?preset=join-immediate', 'history-anomalies', async (page) => {
    await settled(page);
    await seek(page, 60_000);
    await page.check('#only-anomalies');
    const flags = await until(
      'only anomalous rows',
      () => page.locator('#history table.ops tr.op').evaluateAll((rs) =>
        rs.map((r) => (r.classList.contains('anomaly') ? r.querySelector('span.flag')?.textContent : null)),
      ),
      (f) => f.length > 0 && f.every((t) => t !== null),
    );
    assert.ok(flags.includes('stale read'), `flags: ${flags}`);
    const summary = await page.locator('#anomaly-summary').textContent();
    const stale = Number(/^so far: (\d+) stale reads/.exec(summary)?.[1]);
    assert.ok(stale > 0, `the summary counts the stale reads: ${summary}`);
  });
});

test('the history row clicked stays listed and marked as selected', TIMEOUT, async () => {
  await withExplorer('?t=10000000', 'history-selected', async (page) => {
    await settled(page);
    const row = page.locator('#history table.ops tr.op', { hasText: 'write' }).first();
    await row.waitFor();
    const operation = await row.locator('td.op-text').textContent();
    await row.click();
    await waitForText(page, '#op-replicas', /^RF 3 → /);
    // The clicked row stays in the pane, marked as selected.
    await until(
      'a selected row in the history',
      () => page.locator('#history table.ops tr.op.selected').count(),
      (n) => n === 1,
      2_000,
    );
    assert.equal(
      await page.locator('#history table.ops tr.op.selected td.op-text').textContent(),
      operation,
    );
  });
});

test('"Copy link" puts the address of this exact run on the clipboard', TIMEOUT, async () => {
  await withExplorer('?preset=hints&t=12000000', 'copy-link', async (page) => {
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    await settled(page);
    await waitForText(page, '#clock', '12.000 s / 50 s');
    await page.click('#share');
    await waitForText(page, '#notice', /^Link copied/);
    const href = await page.evaluate(() => location.href);
    assert.equal(new URL(href).searchParams.get('t'), '12000000', href);
    const copied = await until(
      'the clipboard holds the link',
      () => page.evaluate(() => navigator.clipboard.readText()),
      (text) => text === href,
      5_000,
    );
    assert.equal(copied, href);
  });
});

test('at 1280 px the page does not scroll sideways and every control is in view', TIMEOUT, async () => {
  await withExplorer('', 'layout', async (page) => {
    await settled(page, 3);
    const problems = await page.evaluate(() => {
      const out = [];
      const width = document.documentElement.clientWidth;
      const wide = document.documentElement.scrollWidth;
      if (wide > width) out.push(`the page scrolls sideways: ${wide} px wide in a ${width} px window`);
      // A panel may scroll, but then a control past its right edge is hidden until one scrolls
      // the panel: report those.
      for (const panel of document.querySelectorAll('section.panel, table#nodes')) {
        const box = panel.getBoundingClientRect();
        for (const control of panel.querySelectorAll('button, input, select, textarea')) {
          const inner = control.getBoundingClientRect();
          if (inner.width > 0 && inner.right > box.right + 1) {
            const what = control.id
              ? `#${control.id}`
              : `${control.tagName.toLowerCase()}.${control.getAttribute('class') ?? ''}`;
            const [end, limit] = [inner.right, box.right].map((x) => x.toFixed(0));
            out.push(`${what} ends at ${end} px, past the edge of #${panel.id} (${limit} px)`);
          }
        }
      }
      return [...new Set(out)];
    });
    assert.deepEqual(problems, []);
  });
});
