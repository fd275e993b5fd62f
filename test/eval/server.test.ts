/**
 * `--server`: the harness through an OpenAI-compatible completions server. A small
 * server in this test serves the tiny checkpoint the way such servers do (prompt
 * tokenized with a document-start token, echo + logprobs with text offsets, greedy
 * generation with stop strings); scores through it equal the local scorer's, and
 * `glam eval --server` reports what `glam eval --model` does.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Tokenizer } from '../../src/data/tokenizer.js';
import { loadTaskData } from '../../src/eval/data.js';
import { type EvalSettings, evaluateTask } from '../../src/eval/evaluate.js';
import { logSoftmax, ModelScorer } from '../../src/eval/model-scorer.js';
import { cutAtStop } from '../../src/eval/scorer.js';
import { ServerScorer } from '../../src/eval/server-scorer.js';
import { getTask } from '../../src/eval/tasks.js';
import { generateIds } from '../../src/infer/generate.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { GlamModel } from '../../src/model/glam.js';
import { evalFixture, repoRoot } from './helpers.js';

const ck = loadCheckpoint(evalFixture('tiny-moe'));
const tokenizer = Tokenizer.load(ck.tokenizerPath!);
const model = new GlamModel(ck.config);
const weights = ck.weights;
let server: Server;
let url = '';

/** Prompt log-probabilities as an OpenAI completions response with echo. */
function echo(prompt: string): unknown {
  const ids = tokenizer.encode(prompt);
  const seq = [tokenizer.eosId, ...ids].slice(-(ck.config.max_seq_len + 1));
  const kept = ids.slice(ids.length - (seq.length - 1));
  const T = seq.length - 1;
  const logits = model.logits(weights, model.workspace(), Int32Array.from(seq.slice(0, T)), 1, T);
  const V = ck.config.vocab_size;
  const tokens: string[] = [];
  const token_logprobs: number[] = [];
  const top_logprobs: Array<Record<string, number>> = [];
  const text_offset: number[] = [];
  const dropped = tokenizer.decode(ids.slice(0, ids.length - kept.length)).length;
  kept.forEach((id, p) => {
    const row = logSoftmax(logits.subarray(p * V, (p + 1) * V));
    let best = 0;
    for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
    tokens.push(tokenizer.decode([id]));
    token_logprobs.push(row[id]!);
    top_logprobs.push({ [tokenizer.decode([best])]: row[best]! });
    text_offset.push(dropped + tokenizer.decode(kept.slice(0, p)).length);
  });
  return { choices: [{ text: prompt, logprobs: { tokens, token_logprobs, top_logprobs, text_offset } }] };
}

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const send = (code: number, v: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(v));
      };
      if (req.url === '/v1/models') return send(200, { data: [{ id: 'tiny', max_model_len: 64 }] });
      if (req.url !== '/v1/completions') return send(404, { error: { message: 'not found' } });
      const r = JSON.parse(body) as { prompt: string; echo?: boolean; max_tokens: number; stop?: string[] };
      if (r.echo && r.max_tokens === 0) return send(200, echo(r.prompt));
      const ids = generateIds(model, weights, [tokenizer.eosId, ...tokenizer.encode(r.prompt)], {
        maxTokens: r.max_tokens,
        seed: 0,
        temperature: 0,
        topK: 0,
        topP: 1,
        stopToken: tokenizer.eosId,
      });
      const text = tokenizer.decode(ids);
      return send(200, { choices: [{ text: cutAtStop(text, r.stop ?? []) ?? text }] });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => server.close());

const settings: EvalSettings = {
  shots: 0,
  seed: 0,
  beam: 1,
  maxGenTokens: 5,
  contextTokens: 64,
  countTokens: (t) => tokenizer.encode(t).length,
};

test('scores through the server equal the local scorer, task by task', async () => {
  const remote = await ServerScorer.connect(url);
  assert.equal(remote.contextLength, 64);
  const local = new ModelScorer(model, weights, tokenizer, 'local');
  const data = evalFixture('parity');
  for (const [task, file] of [
    ['piqa', 'mc.jsonl'],
    ['winogrande', 'schema.jsonl'],
    ['lambada', 'lambada.jsonl'],
    ['rte', 'rte.jsonl'],
  ] as const) {
    const input = { task: getTask(task), ...loadTaskData(getTask(task), join(data, file)) };
    const a = await evaluateTask(input, remote, settings);
    const b = await evaluateTask(input, local, settings);
    for (const [k, x] of Object.entries(b.result.metrics)) {
      assert.ok(Math.abs(a.result.metrics[k]! - x) <= 1e-9 * Math.max(1, Math.abs(x)), `${task} ${k}`);
    }
    a.predictions.forEach((p, i) => {
      const q = b.predictions[i]!;
      assert.equal(p.prediction, q.prediction, `${task} ${p.id}`);
      p.candidates!.forEach((c, j) => {
        assert.equal(c.tokens, q.candidates![j]!.tokens, `${task} ${p.id}`);
        assert.ok(Math.abs(c.logprob - q.candidates![j]!.logprob) < 1e-5, `${task} ${p.id}`);
      });
    });
  }
  const nq = { task: getTask('nq'), ...loadTaskData(getTask('nq'), evalFixture('formats', 'nq_open.jsonl')) };
  const g1 = await evaluateTask(nq, remote, settings);
  const g2 = await evaluateTask(nq, local, settings);
  assert.equal(g1.predictions[0]!.generated, g2.predictions[0]!.generated);
});

test('glam eval --server prints the same report as glam eval --model', async () => {
  const run = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'glam.js'), 'eval', ...args], {
        env: { ...process.env, GLAM_THREADS: '1' },
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (c) => {
        out += c;
      });
      child.stderr.on('data', (c) => {
        err += c;
      });
      child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(err))));
    });
  const common = [
    '--tasks',
    'rte',
    '--data',
    join(evalFixture('parity'), 'rte.jsonl'),
    '--no-cache',
    '--json',
  ];
  const viaServer = JSON.parse(await run(['--server', url, ...common])) as {
    results: { rte: { score: number } };
    scorer: string;
  };
  const local = JSON.parse(await run(['--model', evalFixture('tiny-moe'), ...common])) as {
    results: { rte: { score: number } };
  };
  assert.match(viaServer.scorer, /OpenAI-compatible server/);
  assert.equal(viaServer.results.rte.score, local.results.rte.score);
  await assert.rejects(ServerScorer.connect('ftp://x'), /must be an http\(s\) URL/);
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  await assert.rejects(ServerScorer.connect(`http://127.0.0.1:${port}`), /ECONNREFUSED/);
});
