/**
 * The playground page in a real browser: headless Debian chromium driven by playwright-core. Types a
 * prompt, generates, and checks the streamed tokens, the per-token routing view (two experts and their
 * gates per MoE layer) and the live expert-load bars; saves a screenshot to test-results/. Skipped,
 * saying so, where chromium is not installed (`.ci/run` installs it).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { repoRoot, startServer } from './helpers.js';

const CHROMIUM = process.env.GLAM_CHROMIUM ?? '/usr/bin/chromium';
const missing = existsSync(CHROMIUM)
  ? false
  : `no chromium at ${CHROMIUM} (apt-get install chromium, or set GLAM_CHROMIUM)`;

test('the playground streams tokens with their routing and shows expert load', {
  skip: missing,
}, async () => {
  const server = await startServer();
  const profile = mkdtempSync(path.join(tmpdir(), 'glam-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById('model')?.textContent?.includes('ready'));
    await page.fill('#prompt', 'Alice was beginning');
    await page.fill('#max_tokens', '12');
    await page.fill('#temperature', '0');
    await page.click('#generate');
    // Streamed tokens arrive, then the usage line says how many.
    await page.waitForFunction(() => document.getElementById('stats')?.textContent?.includes('12 tokens'));
    const spans = await page.locator('#output .token').count();
    assert.equal(spans, 12, 'one span per generated token');
    const text = (await page.locator('#output').textContent()) ?? '';
    assert.ok(text.startsWith('Alice was beginning') && text.length > 'Alice was beginning'.length);
    // The routing view: a header per token and, for the one MoE layer, two experts per token.
    assert.equal(await page.locator('#routing th.tok-head').count(), 12);
    const cells = page.locator('#routing td.route-cell');
    assert.equal(await cells.count(), 12);
    assert.equal(await cells.first().locator('.chip').count(), 2);
    assert.match(
      ((await cells.first().textContent()) ?? '').replace(/\s+/g, ' '),
      /e\d+ 0\.\d\d\s?e\d+ 0\.\d\d/,
    );
    await page.locator('#output .token').nth(3).click();
    assert.match((await page.locator('#detail').textContent()) ?? '', /layer 0[\s\S]*gate 0\.\d{4}/);
    // Expert-load bars from the server's counters: 4 experts in the one MoE layer, after 12 tokens.
    await page.waitForFunction(() => document.querySelectorAll('#load .load-bar').length === 4);
    assert.match(
      (await page.locator('#load .name').first().textContent()) ?? '',
      /layer 0 · \d+ assignments/,
    );
    mkdirSync(path.join(repoRoot, 'test-results'), { recursive: true });
    const shot = path.join(repoRoot, 'test-results', 'playground.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(existsSync(shot));
    assert.deepEqual(errors, [], 'no script errors on the page');
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    await server.shutdown();
  }
});
