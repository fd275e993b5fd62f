/**
 * `glam serve` under bad input and load: a fuzz list of malformed requests (bad JSON, wrong types,
 * negative or huge values, unknown token ids, oversized and slow bodies, wrong keys, routes and
 * methods) all answered 4xx in OpenAI's error shape with the server still up; a bounded load test
 * where every request completes or gets 429 and resident memory stays bounded; a client that goes
 * away cancels its request, running or queued.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { GlamServer } from '../../src/serve/server.js';
import { metric, postJson, raw, sleep, slowCheckpoint, startServer } from './helpers.js';

const KEY = 'sekret-key';
const AUTH = { Authorization: `Bearer ${KEY}` };

describe('malformed requests', () => {
  let server: GlamServer;
  before(async () => {
    server = await startServer({ apiKey: KEY, maxBodyBytes: 64 * 1024, bodyTimeoutMs: 400 });
  });
  after(() => server.shutdown());

  const completionBodies: [string, unknown][] = [
    ['missing prompt', {}],
    ['prompt null', { prompt: null }],
    ['prompt a number', { prompt: 5 }],
    ['prompt an object', { prompt: { a: 1 } }],
    ['prompt empty array', { prompt: [] }],
    ['prompt of empty arrays', { prompt: [[]] }],
    ['prompt mixing ids and text', { prompt: [1, 'a'] }],
    ['prompt mixing lists and text', { prompt: [[1], 'a'] }],
    ['negative token id', { prompt: [-1] }],
    ['token id past the vocabulary', { prompt: [512] }],
    ['fractional token id', { prompt: [1.5] }],
    ['huge token id', { prompt: [1e30] }],
    ['too many prompts', { prompt: Array.from({ length: 300 }, () => 'a') }],
    ['negative max_tokens', { prompt: 'x', max_tokens: -1 }],
    ['huge max_tokens', { prompt: 'x', max_tokens: 1e9 }],
    ['max_tokens a string', { prompt: 'x', max_tokens: 'ten' }],
    ['fractional max_tokens', { prompt: 'x', max_tokens: 1.5 }],
    ['max_tokens past the context', { prompt: 'x', max_tokens: 64 }],
    ['negative temperature', { prompt: 'x', temperature: -0.1 }],
    ['temperature a string', { prompt: 'x', temperature: 'hot' }],
    ['enormous temperature', { prompt: 'x', temperature: 1e6 }],
    ['top_p 0', { prompt: 'x', top_p: 0 }],
    ['top_p above 1', { prompt: 'x', top_p: 1.5 }],
    ['top_k below -1', { prompt: 'x', top_k: -2 }],
    ['top_k a string', { prompt: 'x', top_k: 'a' }],
    ['n 0', { prompt: 'x', n: 0 }],
    ['n 1000', { prompt: 'x', n: 1000 }],
    ['fractional n', { prompt: 'x', n: 1.5 }],
    ['negative logprobs', { prompt: 'x', logprobs: -1 }],
    ['logprobs 21', { prompt: 'x', logprobs: 21 }],
    ['logprobs true', { prompt: 'x', logprobs: true }],
    ['echo a string', { prompt: 'x', echo: 'yes' }],
    ['stream a number', { prompt: 'x', stream: 1 }],
    ['stop a number', { prompt: 'x', stop: 5 }],
    ['empty stop string', { prompt: 'x', stop: [''] }],
    ['stop of numbers', { prompt: 'x', stop: [1] }],
    ['twenty stop strings', { prompt: 'x', stop: Array.from({ length: 20 }, (_, i) => `s${i}`) }],
    ['logit_bias an array', { prompt: 'x', logit_bias: [1] }],
    ['logit_bias key not an id', { prompt: 'x', logit_bias: { abc: 1 } }],
    ['logit_bias unknown token', { prompt: 'x', logit_bias: { '99999': 1 } }],
    ['logit_bias out of range', { prompt: 'x', logit_bias: { '1': 500 } }],
    ['logit_bias a string', { prompt: 'x', logit_bias: { '1': 'x' } }],
    ['seed a string', { prompt: 'x', seed: 'x' }],
    ['fractional seed', { prompt: 'x', seed: 1.5 }],
    ['stream_options a string', { prompt: 'x', stream: true, stream_options: 'x' }],
    ['include_usage a string', { prompt: 'x', stream: true, stream_options: { include_usage: 'y' } }],
    ['presence penalty', { prompt: 'x', presence_penalty: 0.5 }],
    ['suffix', { prompt: 'x', suffix: 'tail' }],
    ['best_of other than n', { prompt: 'x', best_of: 3 }],
    ['negative stop_token_ids', { prompt: 'x', stop_token_ids: [-1] }],
    ['return_token_ids a string', { prompt: 'x', return_token_ids: 'x' }],
    ['model a number', { prompt: 'x', model: 5 }],
  ];

  test(`${completionBodies.length} malformed completion bodies are answered 400 naming the problem`, async () => {
    for (const [what, body] of completionBodies) {
      const r = await raw(server.url, 'POST', '/v1/completions', JSON.stringify(body), AUTH);
      assert.equal(r.status, 400, `${what}: ${r.status} ${r.body}`);
      const e = (JSON.parse(r.body) as { error: Record<string, unknown> }).error;
      assert.equal(e.type, 'invalid_request_error', what);
      assert.ok(typeof e.message === 'string' && e.message.length > 10, `${what}: a message`);
      assert.ok('param' in e && 'code' in e, `${what}: OpenAI's error fields`);
    }
  });

  test('bad bytes, bad routes, bad methods, bad keys', async () => {
    const cases: [string, string, string, string | Buffer | undefined, Record<string, string>, number][] = [
      ['not JSON', 'POST', '/v1/completions', 'not json', AUTH, 400],
      ['truncated JSON', 'POST', '/v1/completions', '{"prompt": "x"', AUTH, 400],
      ['empty body', 'POST', '/v1/completions', '', AUTH, 400],
      ['a JSON array', 'POST', '/v1/completions', '[]', AUTH, 400],
      ['JSON null', 'POST', '/v1/completions', 'null', AUTH, 400],
      ['a JSON string', 'POST', '/v1/completions', '"prompt"', AUTH, 400],
      ['invalid UTF-8', 'POST', '/v1/completions', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), AUTH, 400],
      ['no key', 'POST', '/v1/completions', '{"prompt":"x"}', {}, 401],
      ['wrong key', 'POST', '/v1/completions', '{"prompt":"x"}', { Authorization: 'Bearer nope' }, 401],
      ['key without Bearer', 'POST', '/v1/completions', '{"prompt":"x"}', { Authorization: KEY }, 401],
      ['models without key', 'GET', '/v1/models', undefined, {}, 401],
      ['unknown route', 'GET', '/nope', undefined, {}, 404],
      ['unknown /v1 route', 'POST', '/v1/chat/completions', '{}', AUTH, 404],
      ['GET completions', 'GET', '/v1/completions', undefined, AUTH, 405],
      ['DELETE health', 'DELETE', '/health', undefined, {}, 405],
      ['tokenize a number', 'POST', '/tokenize', '{"prompt": 5}', {}, 400],
      ['tokenize bad flag', 'POST', '/tokenize', '{"prompt": "x", "add_special_tokens": 1}', {}, 400],
      ['detokenize bad ids', 'POST', '/detokenize', '{"tokens": [-1]}', {}, 400],
      ['detokenize a string', 'POST', '/detokenize', '{"tokens": "abc"}', {}, 400],
      ['detokenize non-JSON', 'POST', '/detokenize', 'tokens', {}, 400],
      ['body over the limit', 'POST', '/v1/completions', `{"prompt": "${'a'.repeat(70 * 1024)}"}`, AUTH, 413],
    ];
    for (const [what, method, path, body, headers, status] of cases) {
      const r = await raw(server.url, method, path, body, headers);
      assert.equal(r.status, status, `${what}: ${r.status} ${r.body}`);
      assert.ok(JSON.parse(r.body).error.message, `${what}: an OpenAI error body`);
    }
    // The health check and the metrics stay public.
    assert.equal((await raw(server.url, 'GET', '/health')).status, 200);
    assert.equal((await raw(server.url, 'GET', '/metrics')).status, 200);
  });

  test('a body over the limit sent in chunks gets 413; a slow, partial body gets 408', async () => {
    const url = new URL(server.url);
    const send = (head: string, chunks: string[], pauseMs: number) =>
      new Promise<string>((resolve, reject) => {
        const sock = connect(Number(url.port), url.hostname);
        let out = '';
        sock.on('data', (d) => {
          out += d.toString();
        });
        sock.on('close', () => resolve(out));
        sock.on('error', reject);
        sock.write(head);
        let i = 0;
        const next = () => {
          if (i < chunks.length && !sock.destroyed) {
            sock.write(chunks[i++]!);
            setTimeout(next, pauseMs);
          }
        };
        next();
        setTimeout(() => sock.destroy(), 5000);
      });
    const chunk = 'a'.repeat(16 * 1024);
    const chunked = await send(
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nTransfer-Encoding: chunked\r\n\r\n`,
      Array.from({ length: 8 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`),
      5,
    );
    assert.match(chunked, /^HTTP\/1\.1 413/);
    const slow = await send(
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 100\r\n\r\n`,
      ['{"prompt": '],
      0,
    );
    assert.match(slow, /^HTTP\/1\.1 408/);
    assert.match(slow, /did not arrive within/);
    // Still serving.
    const ok = await postJson(server.url, '/v1/completions', { prompt: 'x', max_tokens: 2 }, AUTH);
    assert.equal(ok.status, 200);
  });
});

describe('load', () => {
  test('500 requests at concurrency 32: each completes or gets 429; memory stays bounded', async () => {
    const server = await startServer({ parallel: 4, maxQueue: 8 });
    try {
      const rss = async () =>
        metric((await raw(server.url, 'GET', '/metrics')).body, 'process_resident_memory_bytes');
      // Warm up, so the first measurement includes the steady-state buffers.
      await Promise.all(
        Array.from({ length: 8 }, () =>
          postJson(server.url, '/v1/completions', { prompt: 'a', max_tokens: 4 }),
        ),
      );
      const before = await rss();
      const counts = new Map<number, number>();
      let next = 0;
      const started = Date.now();
      const workerLoop = async () => {
        while (next < 500) {
          const i = next++;
          const r = await raw(
            server.url,
            'POST',
            '/v1/completions',
            JSON.stringify({
              prompt: `request ${i}`,
              max_tokens: 3 + (i % 5),
              temperature: 0.7,
              seed: i,
              stream: i % 2 === 0,
            }),
          );
          counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
          if (r.status === 429) assert.equal(r.headers['retry-after'], '1');
        }
      };
      await Promise.all(Array.from({ length: 32 }, workerLoop));
      const seconds = (Date.now() - started) / 1000;
      const after = await rss();
      const statuses = [...counts.keys()].sort();
      assert.ok(
        statuses.every((s) => s === 200 || s === 429),
        `statuses ${JSON.stringify([...counts])}`,
      );
      assert.equal(
        [...counts.values()].reduce((a, b) => a + b, 0),
        500,
      );
      assert.ok((counts.get(200) ?? 0) > 0, 'some completed');
      assert.ok(
        after - before < 200 * 2 ** 20,
        `resident memory grew by ${((after - before) / 2 ** 20).toFixed(0)} MiB`,
      );
      const m = (await raw(server.url, 'GET', '/metrics')).body;
      assert.equal(metric(m, 'glam_running_requests'), 0);
      assert.equal(metric(m, 'glam_kv_cache_used_bytes'), 0);
      console.log(
        `# load: ${counts.get(200) ?? 0} completed, ${counts.get(429) ?? 0} refused (429) in ${seconds.toFixed(1)} s; RSS ${(before / 2 ** 20).toFixed(0)} -> ${(after / 2 ** 20).toFixed(0)} MiB`,
      );
    } finally {
      await server.shutdown();
    }
  });
});

describe('disconnects', () => {
  test('a client that goes away cancels its request, running or queued, and frees its cache', async () => {
    const server = await startServer({ modelDir: slowCheckpoint(), modelName: 'slow', parallel: 1 });
    try {
      const metrics = async () => (await raw(server.url, 'GET', '/metrics')).body;
      const url = new URL(server.url);
      const open = (body: unknown) => {
        const sock = connect(Number(url.port), url.hostname);
        const text = JSON.stringify(body);
        sock.write(
          `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
        );
        let got = '';
        sock.on('data', (d) => {
          got += d.toString();
        });
        return { sock, got: () => got };
      };
      const long = { prompt: 'a', max_tokens: 500, temperature: 0, ignore_eos: true };
      const running = open({ ...long, stream: true });
      while (!running.got().includes('data: ')) await sleep(10);
      const queued = open(long);
      while (metric(await metrics(), 'glam_queue_depth') < 1) await sleep(10);
      queued.sock.destroy();
      running.sock.destroy();
      for (let i = 0; i < 500; i++) {
        const m = await metrics();
        if (metric(m, 'glam_running_requests') === 0 && metric(m, 'glam_queue_depth') === 0) break;
        await sleep(10);
      }
      const m = await metrics();
      assert.equal(metric(m, 'glam_running_requests'), 0, 'nothing runs');
      assert.equal(metric(m, 'glam_queue_depth'), 0, 'nothing waits');
      assert.equal(metric(m, 'glam_kv_cache_used_bytes'), 0, 'the cache is free');
      const generated = metric(m, 'glam_generation_tokens_total');
      assert.ok(
        generated < 500,
        `${generated} tokens generated: the running request stopped early, the queued one never ran`,
      );
      // And the server still serves.
      const ok = await postJson(server.url, '/v1/completions', { prompt: 'b', max_tokens: 2 });
      assert.equal(ok.status, 200);
    } finally {
      await server.shutdown();
    }
  });
});
