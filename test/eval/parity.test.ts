/**
 * `glam eval --predictions` against an independent PyTorch implementation
 * (tools/eval_check.py: its own prompt building, its own tokenizer, the float64 model
 * of tools/torch_glam.py) on a small trained checkpoint, for four task types:
 * multiple choice, schema, LAMBADA and a SuperGLUE pair task. Example by example: the
 * same context and candidates, the same token counts, log-likelihoods within 1e-4,
 * the same prediction (except where two candidates tie exactly).
 *
 * Regenerate the expected file with:
 *   /usr/bin/python3 tools/eval_check.py test/fixtures/eval/tiny-moe test/fixtures/eval/parity \
 *     test/fixtures/eval/parity/expected.jsonl
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Prediction } from '../../src/eval/evaluate.js';
import { evalFixture, repoRoot } from './helpers.js';

const readJsonl = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Prediction);

for (const scorer of ['engine', 'recompute']) {
  test(`glam eval --predictions (${scorer} scorer) agrees with the PyTorch check example by example`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'glam-eval-parity-'));
    try {
      const data = evalFixture('parity');
      const out = join(dir, 'predictions.jsonl');
      const r = spawnSync(
        process.execPath,
        [
          join(repoRoot(), 'bin', 'glam.js'),
          'eval',
          '--model',
          evalFixture('tiny-moe'),
          '--tasks',
          'piqa,winogrande,lambada,rte',
          '--data',
          `piqa=${join(data, 'mc.jsonl')}`,
          '--data',
          `winogrande=${join(data, 'schema.jsonl')}`,
          '--data',
          `lambada=${join(data, 'lambada.jsonl')}`,
          '--data',
          `rte=${join(data, 'rte.jsonl')}`,
          '--no-cache',
          '--scorer',
          scorer,
          '--predictions',
          out,
        ],
        { encoding: 'utf8', env: { ...process.env, GLAM_THREADS: '1' } },
      );
      assert.equal(r.status, 0, r.stderr);
      const got = readJsonl(out);
      const want = readJsonl(join(data, 'expected.jsonl'));
      assert.equal(got.length, want.length);
      assert.deepEqual([...new Set(want.map((w) => w.task))], ['piqa', 'winogrande', 'lambada', 'rte']);
      let worst = 0;
      let greedyHits = 0;
      got.forEach((g, i) => {
        const w = want[i]!;
        const at = `${w.task} ${w.id}`;
        assert.equal(g.task, w.task, at);
        assert.equal(g.id, w.id, at);
        assert.deepEqual(g.context, w.context, at);
        assert.deepEqual(g.gold, w.gold, at);
        assert.equal(g.candidates!.length, w.candidates!.length, at);
        g.candidates!.forEach((c, j) => {
          const e = w.candidates![j]!;
          assert.equal(c.text, e.text, at);
          assert.equal(c.tokens, e.tokens, `${at} candidate ${j}: token count`);
          worst = Math.max(worst, Math.abs(c.logprob - e.logprob));
          assert.ok(
            Math.abs(c.logprob - e.logprob) <= 1e-4,
            `${at} candidate ${j}: ${c.logprob} vs ${e.logprob}`,
          );
        });
        if (g.prediction !== w.prediction) {
          // Only an exact tie in the PyTorch scores may pick differently.
          const norm = w.candidates!.map((c) => c.logprob / Math.max(1, c.tokens));
          const a = norm[g.prediction as number]!;
          const b = norm[w.prediction as number]!;
          assert.equal(a, b, `${at}: prediction ${g.prediction} vs ${w.prediction} without a tie`);
        }
        if (w.task === 'lambada' && w.prediction === 1) greedyHits++;
      });
      assert.ok(greedyHits > 0, 'some LAMBADA words are the greedy choice (the check covers both outcomes)');
      assert.ok(worst < 1e-4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
