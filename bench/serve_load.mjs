#!/usr/bin/env node
/**
 * Load on `glam serve`: requests/s, time to first token and inter-token latency at several
 * concurrencies, over several rounds (median and [min-max] of the per-round figures).
 *
 *   nice -n -10 node bench/serve_load.mjs [--model DIR] [--levels 1,4,16,64] [--rounds 3]
 *       [--requests N] [--max-tokens 64] [--prompt-words 24] [--parallel 64] [--json]
 *
 * It starts `glam serve --model DIR --parallel P --max-queue 4096` (default model: the newest checkpoint
 * under runs/, what `npx glam train` writes), waits for /health, and at each concurrency level C keeps C
 * streaming clients busy until N requests (default max(32, 4·C)) have completed. Each request streams
 * `max-tokens` tokens (ignore_eos, so every request generates the same number) at temperature 0.8 with
 * its own seed. Time to first token: from sending the request to the first token's chunk; inter-token
 * latency: between consecutive token chunks of a request. The server is stopped with SIGTERM at the end.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: v } = parseArgs({
  options: {
    model: { type: 'string' },
    levels: { type: 'string', default: '1,4,16,64' },
    rounds: { type: 'string', default: '3' },
    requests: { type: 'string' },
    'max-tokens': { type: 'string', default: '64' },
    'prompt-words': { type: 'string', default: '24' },
    parallel: { type: 'string', default: '64' },
    json: { type: 'boolean', default: false },
  },
});
const levels = v.levels.split(',').map(Number);
const rounds = Number(v.rounds);
const maxTokens = Number(v['max-tokens']);
const WORDS =
  'the ship sailed over a quiet sea while the crew watched the distant shore and spoke of home'.split(' ');

function quantile(xs, q) {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

function startServer() {
  const args = [
    join(root, 'bin/glam.js'),
    'serve',
    '--port',
    '0',
    '--parallel',
    v.parallel,
    '--max-queue',
    '4096',
  ];
  if (v.model) args.push('--model', v.model);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ child, url: m[1], log: () => err });
    });
    child.on('exit', (code) => reject(new Error(`glam serve exited (${code}): ${err}`)));
  });
}

/** One streamed request; returns its first-token time and its inter-token gaps (ms). */
async function one(url, i) {
  const words = Array.from(
    { length: Number(v['prompt-words']) },
    (_, k) => WORDS[(i * 7 + k * 3) % WORDS.length],
  );
  const body = {
    prompt: words.join(' '),
    max_tokens: maxTokens,
    temperature: 0.8,
    seed: i,
    ignore_eos: true,
    stream: true,
  };
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`request ${i}: ${res.status} ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = '';
  let first = Number.NaN;
  let last = 0;
  const gaps = [];
  let tokens = 0;
  for await (const part of res.body) {
    buf += decoder.decode(part, { stream: true });
    for (let cut = buf.indexOf('\n\n'); cut >= 0; cut = buf.indexOf('\n\n')) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.choices.length === 0 || chunk.choices[0].finish_reason !== null) continue;
      const now = performance.now();
      if (tokens === 0) first = now - t0;
      else gaps.push(now - last);
      last = now;
      tokens++;
    }
  }
  return { ttft: first, gaps, tokens, total: performance.now() - t0 };
}

async function level(url, c, round) {
  const n = v.requests ? Number(v.requests) : Math.max(32, 4 * c);
  let next = 0;
  const ttfts = [];
  const gaps = [];
  let tokens = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const r = await one(url, round * 100000 + c * 1000 + i);
      ttfts.push(r.ttft);
      gaps.push(...r.gaps);
      tokens += r.tokens;
    }
  };
  await Promise.all(Array.from({ length: c }, worker));
  const seconds = (performance.now() - t0) / 1000;
  return {
    requestsPerSecond: n / seconds,
    tokensPerSecond: tokens / seconds,
    ttftMs: quantile(ttfts, 0.5),
    ttftP90Ms: quantile(ttfts, 0.9),
    itlMs: quantile(gaps, 0.5),
    itlP90Ms: quantile(gaps, 0.9),
  };
}

const { child, url, log } = await startServer();
try {
  while ((await fetch(`${url}/health`).catch(() => ({ status: 0 }))).status !== 200) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const model = (await (await fetch(`${url}/v1/models`)).json()).data[0].id;
  await level(url, 2, -1); // warm-up
  const results = [];
  for (const c of levels) {
    const runs = [];
    for (let r = 0; r < rounds; r++) runs.push(await level(url, c, r));
    const stat = (key) => {
      const xs = runs.map((x) => x[key]);
      return { median: quantile(xs, 0.5), min: Math.min(...xs), max: Math.max(...xs) };
    };
    const row = {
      concurrency: c,
      requestsPerSecond: stat('requestsPerSecond'),
      tokensPerSecond: stat('tokensPerSecond'),
      ttftMs: stat('ttftMs'),
      ttftP90Ms: stat('ttftP90Ms'),
      itlMs: stat('itlMs'),
      itlP90Ms: stat('itlP90Ms'),
    };
    results.push(row);
    if (!v.json) {
      const f = (s, d = 1) => `${s.median.toFixed(d)} [${s.min.toFixed(d)}-${s.max.toFixed(d)}]`;
      console.error(
        `concurrency ${c}: ${f(row.requestsPerSecond, 2)} req/s, ${f(row.tokensPerSecond)} tokens/s, ` +
          `TTFT p50 ${f(row.ttftMs)} ms (p90 ${row.ttftP90Ms.median.toFixed(1)}), ITL p50 ${f(row.itlMs)} ms (p90 ${row.itlP90Ms.median.toFixed(1)})`,
      );
    }
  }
  const out = {
    model,
    maxTokens,
    promptWords: Number(v['prompt-words']),
    rounds,
    parallel: Number(v.parallel),
    results,
  };
  if (v.json) console.log(JSON.stringify(out));
  else {
    console.log(`\n| concurrency | requests/s | tokens/s | TTFT p50 (ms) | inter-token p50 (ms) |`);
    console.log('| --- | --- | --- | --- | --- |');
    for (const r of results) {
      const f = (s, d = 1) => `${s.median.toFixed(d)} [${s.min.toFixed(d)}–${s.max.toFixed(d)}]`;
      console.log(
        `| ${r.concurrency} | ${f(r.requestsPerSecond, 2)} | ${f(r.tokensPerSecond)} | ${f(r.ttftMs)} | ${f(r.itlMs)} |`,
      );
    }
    console.log(
      `\nmodel ${model}, ${maxTokens} tokens per request, ${rounds} rounds; server parallel ${v.parallel}`,
    );
  }
} catch (err) {
  console.error(log());
  throw err;
} finally {
  child.kill('SIGTERM');
}
