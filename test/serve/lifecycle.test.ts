/**
 * `glam serve` as a process: /health says 503 while the model loads and 200 once ready; SIGTERM lets
 * in-flight work finish (within --timeout, cancelling what is left after it), refuses new work and
 * exits 0; without --model it serves the newest checkpoint under runs/ and says which, or says how to
 * make one.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { raw, repoRoot, slowCheckpoint, spawnServe, TINY } from './helpers.js';

/** Streams a completion; resolves with the raw event text when the response ends or the socket closes. */
function stream(url: string, body: Record<string, unknown>, onFirst: () => void): Promise<string> {
  return new Promise((resolve) => {
    const text = JSON.stringify({ ...body, stream: true });
    const req = request(
      new URL('/v1/completions', url),
      { method: 'POST', headers: { 'Content-Type': 'application/json' } },
      (res) => {
        let got = '';
        let first = true;
        res.on('data', (d: Buffer) => {
          got += d.toString();
          if (first && got.includes('data: ')) {
            first = false;
            onFirst();
          }
        });
        res.on('end', () => resolve(got));
        res.on('error', () => resolve(got));
        res.on('close', () => resolve(got));
      },
    );
    req.on('error', () => resolve(''));
    req.end(text);
  });
}

function exitCode(child: ReturnType<typeof import('node:child_process').spawn>): Promise<number | null> {
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

describe('glam serve process', () => {
  test('health is 503 while loading, 200 when ready; SIGTERM drains in-flight work and exits 0', async () => {
    const { child, url, stderr } = await spawnServe(['--model', slowCheckpoint(), '--timeout', '30']);
    const exited = exitCode(child);
    const seen: string[] = [];
    for (;;) {
      const r = await raw(url, 'GET', '/health');
      seen.push(`${r.status} ${r.body}`);
      if (r.status === 200) break;
      assert.equal(r.status, 503);
    }
    assert.match(seen[0]!, /^503 \{"status":"loading"\}/, `first answer ${seen[0]}`);
    assert.match(seen[seen.length - 1]!, /^200 \{"status":"ok"\}/);
    // A request in flight when SIGTERM arrives runs to its end.
    const events = await stream(
      url,
      { prompt: 'a', max_tokens: 120, temperature: 0, ignore_eos: true },
      () => {
        child.kill('SIGTERM');
      },
    );
    assert.match(events, /"finish_reason":"length"/, 'the in-flight request finished');
    assert.ok(events.trimEnd().endsWith('data: [DONE]'));
    const after = await raw(url, 'GET', '/health').catch(() => ({ status: 0, body: '' }));
    assert.ok(after.status === 0 || after.status === 503, `new work is refused (${after.status})`);
    assert.equal(await exited, 0, stderr());
    assert.match(stderr(), /SIGTERM: draining/);
  });

  test('past --timeout, SIGTERM cancels what is left and still exits 0', async () => {
    const { child, url, stderr } = await spawnServe(['--model', slowCheckpoint(), '--timeout', '0.3']);
    const exited = exitCode(child);
    while ((await raw(url, 'GET', '/health')).status !== 200) {}
    const started = Date.now();
    const events = await stream(
      url,
      { prompt: 'a', max_tokens: 500, temperature: 0, ignore_eos: true },
      () => {
        child.kill('SIGTERM');
      },
    );
    assert.equal(await exited, 0, stderr());
    assert.doesNotMatch(events, /"finish_reason":"length"/, 'the request was cut short');
    assert.match(stderr(), /cancelling 1 request\(s\) still running after 0\.3 s/);
    assert.ok(Date.now() - started < 15_000);
  });

  test('without --model: the newest checkpoint under runs/, or how to make one', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'glam-serve-cwd-'));
    const glam = path.join(repoRoot, 'bin/glam.js');
    const none = spawnSync(process.execPath, [glam, 'serve', '--port', '0'], { cwd, encoding: 'utf8' });
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no checkpoint under runs\/; train one with `npx glam train`/);
    // A run directory as glam train writes it (checkpoints/step-N with its trainer state).
    const step = path.join(cwd, 'runs', 'tiny', 'checkpoints', 'step-000010');
    mkdirSync(path.dirname(step), { recursive: true });
    cpSync(TINY, step, { recursive: true });
    writeFileSync(path.join(step, 'trainer-state.json'), '{}');
    const { child, url, stderr } = await spawnServe([], cwd);
    const exited = exitCode(child);
    assert.match(
      stderr(),
      /serving runs\/tiny\/checkpoints\/step-000010 \(the newest checkpoint under runs\/\)/,
    );
    while ((await raw(url, 'GET', '/health')).status !== 200) {}
    const models = JSON.parse((await raw(url, 'GET', '/v1/models')).body) as { data: { id: string }[] };
    assert.equal(models.data[0]!.id, 'tiny', 'named after the run');
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
