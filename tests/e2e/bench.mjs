// Browser benchmarks of the explorer, run by `cargo xtask bench web` (xtask/src/bench_web.rs),
// which builds the bundle, serves www/ and times the native comparison. Measurements to read, not
// tests: nothing fails on a missed budget; the report says which budgets are met.
//
//   1. Bundle: raw and gzipped size of www/pkg/ringside_ui_bg.wasm and ringside_ui.js.
//   2. Frame rate: the `large-cluster` preset (12 nodes × 16 vnodes, well over 100 messages in
//      flight) playing at 0.1×; requestAnimationFrame intervals sampled in the page, next to an
//      idle page's (the refresh rate the headless browser gives, the physical limit).
//   3. Comparison: the time the page reports for computing the six strategy lanes of the 60 s
//      `join-staged` preset, median of several loads, next to the native `ringside sim compare`.
//
// Environment:
//   RINGSIDE_E2E_BASE_URL      the served explorer (required), e.g. http://127.0.0.1:41234/
//   RINGSIDE_CHROMIUM          the browser binary (default /usr/bin/chromium)
//   RINGSIDE_NATIVE_COMPARE_MS native time of the same comparison in ms (optional, for the ratio)
//   RINGSIDE_NATIVE_COMPARE_CMD the native command timed (optional, shown in the report)
//   RINGSIDE_BENCH_OUT         directory of report.md and results.json (default target/bench/web)
//   RINGSIDE_BENCH_QUICK=1     shorter samples (for development)
//
// Run it directly with `RINGSIDE_E2E_BASE_URL=http://127.0.0.1:PORT/ node bench.mjs` against a
// server of www/ (e.g. `python3 -m http.server PORT` in www/).

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { explorerUrl, launchBrowser } from './support.mjs';

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const QUICK = process.env.RINGSIDE_BENCH_QUICK === '1';

const BUDGET = {
  gzipKb: 350,
  fps: 55,
  compareMs: 2000,
  minMessages: 100,
};

const FPS_QUERY = '?preset=large-cluster&t=8000000';
const FPS_SPEED = '0.1';
const SAMPLE_MS = QUICK ? 3_000 : 10_000;
const COMPARE_QUERY =
  '?preset=join-staged&compare=staged,pending-ranges,immediate,dual-write-cutover,' +
  'stream-then-cutover,sync-dual-write';
const COMPARE_LANES = 6;
const COMPARE_RUNS = 3;
const SETTLE_TIMEOUT = 120_000;

// ---------------------------------------------------------------------------------------------
// Measurements

async function bundleSizes() {
  const pkg = path.join(PROJECT_ROOT, 'www', 'pkg');
  const files = [];
  for (const name of ['ringside_ui_bg.wasm', 'ringside_ui.js']) {
    const bytes = await readFile(path.join(pkg, name));
    files.push({ name, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length });
  }
  const total = {
    name: 'total',
    raw: files.reduce((sum, f) => sum + f.raw, 0),
    gzip: files.reduce((sum, f) => sum + f.gzip, 0),
  };
  return { files, total };
}

async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  return { page, problems, close: () => context.close() };
}

// Waits until the page has computed the checked run and the lanes (both run on the main thread
// after load and would otherwise fall into the frame-rate sample). Returns the lanes' text.
async function settled(page, lanes) {
  await page.waitForFunction(
    (lanes) => {
      const time = document.querySelector('#compare-time');
      const summary = document.querySelector('#anomaly-summary');
      return (
        time?.dataset.ms !== undefined &&
        time.textContent.startsWith(`${lanes} lane`) &&
        summary?.textContent.startsWith('so far:')
      );
    },
    lanes,
    { timeout: SETTLE_TIMEOUT, polling: 50 },
  );
  return page.locator('#compare-time').textContent();
}

// Samples requestAnimationFrame timestamps for `ms` in the page, and every 250 ms the number of
// messages drawn on the ring. Also reads the main thread's busy time over the sample from the
// DevTools protocol (TaskDuration: script, style, layout, paint).
async function sampleFrames(page, ms) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const busy = async () => {
    const { metrics } = await cdp.send('Performance.getMetrics');
    return metrics.find((m) => m.name === 'TaskDuration')?.value ?? NaN;
  };
  const busyBefore = await busy();
  const sample = await page.evaluate(async (ms) => {
    const times = [];
    const messages = [];
    const count = () =>
      document.querySelectorAll('svg#ring g.messages circle.msg').length;
    const timer = setInterval(() => messages.push(count()), 250);
    await new Promise((resolve) => {
      let start = null;
      const frame = (t) => {
        start ??= t;
        times.push(t);
        if (t - start < ms) requestAnimationFrame(frame);
        else resolve();
      };
      requestAnimationFrame(frame);
    });
    clearInterval(timer);
    return { times, messages };
  }, ms);
  const busyMs = ((await busy()) - busyBefore) * 1000;
  await cdp.detach();
  const intervals = sample.times.slice(1).map((t, i) => t - sample.times[i]);
  const sorted = [...intervals].sort((a, b) => a - b);
  const elapsed = sample.times.at(-1) - sample.times[0];
  return {
    frames: intervals.length,
    elapsedMs: elapsed,
    // The median frame rate is that of the median interval; the 10th percentile of the frame rate
    // is that of the 90th percentile interval (the slow frames).
    medianFps: 1000 / percentile(sorted, 0.5),
    p10Fps: 1000 / percentile(sorted, 0.9),
    meanFps: (intervals.length * 1000) / elapsed,
    worstMs: sorted.at(-1),
    longFrames: intervals.filter((i) => i > 50).length,
    intervals,
    busyPerFrameMs: busyMs / Math.max(1, intervals.length),
    messagesMedian: percentile(
      [...sample.messages].sort((a, b) => a - b),
      0.5,
    ),
    messagesMin: Math.min(...sample.messages),
  };
}

async function frameRate(browser) {
  const idle = await newPage(browser);
  let idleResult;
  try {
    await idle.page.setContent('<!doctype html><title>idle</title><p>idle</p>');
    idleResult = await sampleFrames(idle.page, SAMPLE_MS);
  } finally {
    await idle.close();
  }

  const { page, problems, close } = await newPage(browser);
  try {
    await page.goto(explorerUrl(FPS_QUERY));
    await settled(page, 1);
    await page.selectOption('#speed', FPS_SPEED);
    const clockBefore = await page.locator('#clock').textContent();
    await page.click('#play');
    await page.waitForFunction(() => document.querySelector('#play')?.textContent === '⏸ Pause');
    const playing = await sampleFrames(page, SAMPLE_MS);
    await page.click('#play');
    const clockAfter = await page.locator('#clock').textContent();
    const inFlight = await page.locator('svg#ring text.clock-sub').textContent();
    if (problems.length > 0) throw new Error(`the page failed: ${problems.join('; ')}`);
    const refresh = 1000 / idleResult.medianFps;
    for (const r of [idleResult, playing]) {
      r.lateShare = r.intervals.filter((i) => i > 1.5 * refresh).length / Math.max(1, r.frames);
      delete r.intervals;
    }
    return { idle: idleResult, playing, clockBefore, clockAfter, inFlight };
  } finally {
    await close();
  }
}

async function comparison(browser) {
  const { page, problems, close } = await newPage(browser);
  try {
    const runs = [];
    let text = '';
    for (let i = 0; i < COMPARE_RUNS; i++) {
      if (i === 0) await page.goto(explorerUrl(COMPARE_QUERY));
      else await page.reload();
      text = await settled(page, COMPARE_LANES);
      runs.push(Number(await page.locator('#compare-time').getAttribute('data-ms')));
    }
    if (problems.length > 0) throw new Error(`the page failed: ${problems.join('; ')}`);
    const sorted = [...runs].sort((a, b) => a - b);
    return { runs, medianMs: percentile(sorted, 0.5), text };
  } finally {
    await close();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[index];
}

const kb = (bytes) => `${(bytes / 1000).toFixed(1)} kB`;
const met = (ok) => (ok ? '**met**' : '**missed**');
const fixed = (value, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');

function render(results) {
  const { bundle, fps, compare, native, machine } = results;
  const lines = [];
  const push = (line = '') => lines.push(line);
  push(`Run ${machine.date}, \`cargo xtask bench web\`${QUICK ? ' (quick)' : ''}; ${machine.browser}, ` +
    `headless, 1280×800; ${machine.cpus} CPUs, load average ${machine.loadStart} at the start, ` +
    `${machine.loadEnd} at the end.`);
  push();
  push('### Bundle');
  push();
  push('| file | raw | gzip -9 |');
  push('|---|---:|---:|');
  for (const f of [...bundle.files, bundle.total]) {
    const name = f.name === 'total' ? '**total**' : `\`www/pkg/${f.name}\``;
    push(`| ${name} | ${kb(f.raw)} | ${kb(f.gzip)} |`);
  }
  push();
  push(`Budget: ≤ ${BUDGET.gzipKb} kB gzipped: ${met(bundle.total.gzip <= BUDGET.gzipKb * 1000)} ` +
    `(${kb(bundle.total.gzip)}).`);
  push();

  push('### Frame rate');
  push();
  const counted = fps.playing.messagesMedian >= BUDGET.minMessages;
  push(`\`${FPS_QUERY}\` playing at ${FPS_SPEED}× (${fps.clockBefore} → ${fps.clockAfter}), ` +
    `requestAnimationFrame sampled for ${(SAMPLE_MS / 1000).toFixed(0)} s; ring at the end: ${fps.inFlight}` +
    ` (gossip, hidden by default, is not drawn).`);
  push();
  push('| page | frames | median fps | p10 fps | mean fps | late frames | worst frame | ' +
    'frames > 50 ms | main thread busy per frame | messages drawn (median / min) |');
  push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const row = (label, r, messages) =>
    push(`| ${label} | ${r.frames} | ${fixed(r.medianFps)} | ${fixed(r.p10Fps)} | ` +
      `${fixed(r.meanFps)} | ${fixed(r.lateShare * 100)} % | ${fixed(r.worstMs)} ms | ` +
      `${r.longFrames} | ${fixed(r.busyPerFrameMs, 2)} ms | ${messages} |`);
  row('idle page (physical limit)', fps.idle, '–');
  row('explorer, large-cluster, playing', fps.playing,
    `${fps.playing.messagesMedian} / ${fps.playing.messagesMin}`);
  push();
  push('Late frames: intervals longer than 1.5 × the idle page\'s median interval (a refresh was ' +
    'missed). Busy per frame: the DevTools TaskDuration (script, style, layout, paint) over the ' +
    'sample, divided by the frames.');
  push();
  push(`Median fps relative to the idle page: ${fixed((fps.playing.medianFps / fps.idle.medianFps) * 100)} %.`);
  if (counted) {
    push(`Budget: ≥ ${BUDGET.fps} fps median: ${met(fps.playing.medianFps >= BUDGET.fps)} ` +
      `(${fixed(fps.playing.medianFps)} fps with a median of ${fps.playing.messagesMedian} messages on screen).`);
  } else {
    push(`Budget: ≥ ${BUDGET.fps} fps median: **not measured**: only ` +
      `${fps.playing.messagesMedian} messages on screen (median), fewer than the ` +
      `${BUDGET.minMessages} the measurement needs.`);
  }
  push();

  push('### Strategy comparison');
  push();
  push(`\`${COMPARE_QUERY}\`: the time the page reports in \`#compare-time[data-ms]\` for ` +
    `computing ${COMPARE_LANES} lanes (${compare.text}).`);
  push();
  push('| where | runs (ms) | median |');
  push('|---|---|---:|');
  push(`| browser (wasm) | ${compare.runs.map((r) => fixed(r, 0)).join(', ')} | ${fixed(compare.medianMs, 0)} ms |`);
  if (native.ms !== null) {
    push(`| native (\`${native.command}\`, whole process) | ${native.runs ?? ''} | ${fixed(native.ms, 0)} ms |`);
  }
  push();
  if (native.ms !== null) {
    push(`Browser / native: ${fixed(compare.medianMs / native.ms, 2)}×.`);
  }
  push(`Budget: ≤ ${BUDGET.compareMs} ms: ${met(compare.medianMs <= BUDGET.compareMs)}.`);
  push();
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const out = process.env.RINGSIDE_BENCH_OUT || path.join(PROJECT_ROOT, 'target', 'bench', 'web');
  await mkdir(out, { recursive: true });
  const loadStart = loadavg().map((l) => l.toFixed(2)).join(' ');
  const nativeMs = process.env.RINGSIDE_NATIVE_COMPARE_MS;

  const bundle = await bundleSizes();
  console.log(`bench: bundle ${kb(bundle.total.raw)} raw, ${kb(bundle.total.gzip)} gzipped`);

  const browser = await launchBrowser();
  let fps;
  let compare;
  let browserVersion;
  try {
    browserVersion = `Chromium ${browser.version()}`;
    console.log(`bench: frame rate (${(SAMPLE_MS / 1000).toFixed(0)} s idle, then ` +
      `${(SAMPLE_MS / 1000).toFixed(0)} s of ${FPS_QUERY})`);
    fps = await frameRate(browser);
    console.log(`bench: ${fixed(fps.playing.medianFps)} fps median playing, ` +
      `${fixed(fps.idle.medianFps)} idle; ${fps.playing.messagesMedian} messages drawn`);
    console.log(`bench: comparison, ${COMPARE_RUNS} loads of ${COMPARE_QUERY}`);
    compare = await comparison(browser);
    console.log(`bench: comparison ${compare.runs.map((r) => `${r} ms`).join(', ')}`);
  } finally {
    await browser.close();
  }

  const results = {
    bundle,
    fps,
    compare,
    native: {
      ms: nativeMs ? Number(nativeMs) : null,
      runs: process.env.RINGSIDE_NATIVE_COMPARE_RUNS ?? null,
      command: process.env.RINGSIDE_NATIVE_COMPARE_CMD ?? 'ringside sim compare core/presets/join-staged.toml',
    },
    budgets: {
      bundle: bundle.total.gzip <= BUDGET.gzipKb * 1000,
      fps: fps.playing.messagesMedian >= BUDGET.minMessages ? fps.playing.medianFps >= BUDGET.fps : null,
      compare: compare.medianMs <= BUDGET.compareMs,
    },
    machine: {
      date: new Date().toISOString().replace(/:\d\d\.\d+Z$/, ' UTC').replace('T', ' '),
      browser: browserVersion,
      cpus: cpus().length,
      loadStart,
      loadEnd: loadavg().map((l) => l.toFixed(2)).join(' '),
    },
  };
  const report = render(results);
  await writeFile(path.join(out, 'report.md'), `${report}\n`);
  await writeFile(path.join(out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log();
  console.log(report);
  console.log(`bench: report written to ${path.join(out, 'report.md')}`);
}

await main();
