// Course mode as a learner uses it: an exercise opened by its link, answered right, answered
// wrong (the cluster's answer, the explanation, "Show" jumping to the moment), another variant,
// and the course menu keeping progress. Screenshots go to RINGSIDE_E2E_SCREENSHOTS.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explorerSession, until, waitForText } from './support.mjs';

const TIMEOUT = { timeout: 60_000 };

// core/course/01-ring/fourth-node-ownership.toml, variant 1: RF 3. A owns 100 % before D joins,
// D shows `?` while it joins and owns 75 % once NORMAL.
const EXERCISE = '?exercise=fourth-node-ownership&variant=1';

const withExplorer = explorerSession();

async function answer(page, answers) {
  for (const [question, text] of Object.entries(answers)) {
    await page.fill(`input.answer[data-question="${question}"]`, text);
  }
  await page.click('#exercise-check');
}

test('an exercise link opens the exercise; right answers are marked right', TIMEOUT, async () => {
  await withExplorer(EXERCISE, 'course-right', async (page) => {
    await waitForText(page, '#exercise h3', 'Effective ownership after a fourth node joins');
    const prompt = await page.locator('#exercise .prompt').textContent();
    assert.match(prompt, /replication factor is 3/, prompt);
    // The cluster is shown just before the first question's moment (the inspect at 1 s).
    await waitForText(page, '#clock', /^0\.999 s/);
    await answer(page, { before: '100%', joining: '?', after: '75%' });
    await waitForText(page, '#exercise-score', '3 of 3 right');
    assert.equal(await page.locator('.verdict.right').count(), 3);
  });
});

test('a wrong prediction shows the cluster\'s answer, why, and the moment', TIMEOUT, async () => {
  await withExplorer(EXERCISE, 'course-wrong', async (page) => {
    await page.locator('#exercise').waitFor();
    // The reference course's answer: 66.7 %.
    await answer(page, { before: '100%', joining: '?', after: '66.7%' });
    await waitForText(page, '#exercise-score', '2 of 3 right');
    const wrong = page.locator('li.question[data-question="after"] .verdict.wrong');
    const text = await wrong.textContent();
    assert.match(text, /you: 66\.7% · the cluster: 75\.0%/, text);
    const why = await page.locator('li.question[data-question="after"] .explanation').textContent();
    assert.match(why, /effective ownership counts every replica/, why);
    // "Show" jumps to the moment asked about (the inspect at 50 s) and selects D.
    await wrong.locator('button.show').click();
    await waitForText(page, '#clock', /^50\.000 s/);
    await waitForText(page, '#inspector h3', /^D — UN/);
  });
});

test('another variant changes the parameters and the answers', TIMEOUT, async () => {
  await withExplorer(EXERCISE, 'course-variant', async (page) => {
    await page.locator('#exercise').waitFor();
    await page.click('#exercise-next');
    await until('the variant in the address bar', () => page.evaluate(() => location.search), (q) =>
      q.includes('variant=0'),
    );
    const prompt = await waitForText(page, '#exercise .prompt', /replication factor is 2/);
    assert.match(prompt, /replication factor is 2/);
    // With RF 2, A owns 75 % before D joins (its own half of the ring and C's quarter), and the
    // 75 % of variant 1 is wrong after the join: 2 of 4 nodes hold each key.
    await answer(page, { before: '75%', joining: '?', after: '75%' });
    await waitForText(page, '#exercise-score', '2 of 3 right');
    const after = await page.locator('li.question[data-question="after"] .verdict').textContent();
    assert.match(after, /the cluster: 50\.0%/, after);
  });
});

test('the course menu lists the modules and keeps progress across pages', TIMEOUT, async () => {
  await withExplorer(EXERCISE, 'course-menu', async (page) => {
    await page.locator('#exercise').waitFor();
    await answer(page, { before: '100%', joining: '?', after: '75%' });
    await waitForText(page, '#exercise-score', '3 of 3 right');
    // A fresh page of the same browser context: localStorage holds the progress.
    await page.goto(page.url().replace(/\?.*$/, ''));
    await page.locator('h1').waitFor();
    await page.keyboard.press('c');
    await page.locator('#course').waitFor();
    const item = page.locator('button.course-item[data-exercise="fourth-node-ownership"]');
    const mark = await item.locator('xpath=..').locator('.meta').textContent();
    assert.match(mark, /✓ 3\/3/, mark);
    assert.match(await page.locator('#course').textContent(), /01 The ring/);
    await item.click();
    await waitForText(page, '#exercise h3', 'Effective ownership after a fourth node joins');
    assert.match(await page.evaluate(() => location.search), /exercise=fourth-node-ownership/);
  });
});
