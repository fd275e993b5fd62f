/**
 * `glam eval --server` end to end against a live `glam serve` of the committed tiny checkpoint (a
 * child process, killed whatever happens to the test). The server offers its tokenizer, so prompts go
 * as token ids: every candidate's log-likelihood, token count and greedy flag, every prediction and
 * every generated answer equal the local engine scorer's, on multiple choice, schema, LAMBADA,
 * SuperGLUE's COPA and generation; a sequence past the server's window is left-truncated to it;
 * generated text starts from the document-start token as locally (short prompts where leaving it
 * out changes the answer); the CLI with OPENAI_API_KEY prints what the local scorer computes.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Tokenizer } from '../../src/data/tokenizer.js';
import { loadTaskData } from '../../src/eval/data.js';
import { EngineScorer } from '../../src/eval/engine-scorer.js';
import { type EvalSettings, evaluateTask, type Prediction, type TaskInput } from '../../src/eval/evaluate.js';
import type { Example } from '../../src/eval/examples.js';
import { encodePair, idsAfter } from '../../src/eval/scorer.js';
import { ServerScorer } from '../../src/eval/server-scorer.js';
import { getTask } from '../../src/eval/tasks.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { evalFixture, repoRoot, sharedEvalsets } from './helpers.js';

const KEY = 'eval-test-key';
const ck = loadCheckpoint(evalFixture('tiny-moe'));
const tokenizer = Tokenizer.load(ck.tokenizerPath!);
const maxLen = ck.config.max_seq_len;
const local = new EngineScorer(ck.config, ck.weights, tokenizer, 'local', { kvCacheBytes: 8 << 20 });
const scratch = mkdtempSync(join(tmpdir(), 'glam-eval-live-'));
let child: ChildProcess | undefined;
let url = '';

const killServer = () => child?.kill('SIGKILL');

before(async () => {
  // Should this process die first, the server goes with it.
  process.once('exit', killServer);
  const proc = spawn(
    process.execPath,
    [
      join(repoRoot(), 'bin', 'glam.js'),
      'serve',
      '--model',
      evalFixture('tiny-moe'),
      '--port',
      '0',
      '--api-key',
      KEY,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GLAM_THREADS: '1' } },
  );
  child = proc;
  let err = '';
  url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`glam serve did not listen within 30 s: ${err}`)),
      30_000,
    );
    proc.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.on('exit', (code) => reject(new Error(`glam serve exited with ${code}: ${err}`)));
  });
  for (let i = 0; (await fetch(`${url}/health`)).status !== 200; i++) {
    assert.ok(i < 300, `glam serve not ready: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  const proc = child;
  if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  process.off('exit', killServer);
  rmSync(scratch, { recursive: true, force: true });
});

const settings: EvalSettings = {
  shots: 0,
  seed: 0,
  beam: 1,
  maxGenTokens: 8,
  contextTokens: maxLen,
  countTokens: (t) => tokenizer.encode(t).length,
};

/** Whether every scored sequence of an example ([eos] + context + continuation) fits the server's window. */
function fits(ex: Example): boolean {
  if (ex.type === 'gen') return true;
  const pairs =
    ex.type === 'lm'
      ? [[ex.context, ex.continuation] as const]
      : ex.continuations.map(
          (c, j) => [typeof ex.context === 'string' ? ex.context : ex.context[j]!, c] as const,
        );
  return pairs.every(([c, k]) => {
    const p = encodePair(tokenizer, c, k);
    return 1 + p.context.length + p.continuation.length <= maxLen;
  });
}

function input(task: string, file: string, limit?: number): TaskInput {
  const spec = getTask(task);
  const d = loadTaskData(spec, file);
  return { task: spec, ...d, examples: d.examples.slice(0, limit) };
}

function assertSame(task: string, remote: Prediction[], want: Prediction[]): void {
  assert.equal(remote.length, want.length);
  remote.forEach((p, i) => {
    const q = want[i]!;
    assert.deepEqual(p.context, q.context, `${task} ${p.id}`);
    assert.deepEqual(p.prediction, q.prediction, `${task} ${p.id}`);
    assert.equal(p.generated, q.generated, `${task} ${p.id}`);
    assert.equal(p.candidates?.length, q.candidates?.length, `${task} ${p.id}`);
    p.candidates?.forEach((c, j) => {
      const d = q.candidates![j]!;
      assert.equal(c.tokens, d.tokens, `${task} ${p.id} candidate ${j}`);
      assert.ok(
        Math.abs(c.logprob - d.logprob) <= 1e-4,
        `${task} ${p.id} candidate ${j}: ${c.logprob} vs ${d.logprob}`,
      );
    });
  });
}

test('token-id prompts through glam serve score and generate as the local engine scorer', async () => {
  await assert.rejects(ServerScorer.connect(url), /HTTP 401/);
  const remote = await ServerScorer.connect(url, { apiKey: KEY });
  assert.equal(remote.tokenPrompts, true);
  assert.match(remote.description, /token-id prompts/);
  assert.equal(remote.contextLength, maxLen);
  // Real files where ../shared/evalsets is beside the repository (a development machine); the
  // committed fixtures otherwise (a clean clone, CI).
  const shared = sharedEvalsets();
  const real = (task: string, file: string, fallback: string, limit: number) =>
    shared !== undefined
      ? input(task, join(shared, file), limit)
      : input(task, evalFixture('formats', fallback));
  const cases: Array<[TaskInput, Partial<EvalSettings>]> = [
    [input('piqa', evalFixture('parity', 'mc.jsonl')), {}],
    [input('winogrande', evalFixture('parity', 'schema.jsonl')), {}],
    [input('lambada', evalFixture('parity', 'lambada.jsonl')), {}],
    [real('copa', 'copa/superglue_COPA_val.jsonl', 'superglue_copa.jsonl', 8), {}],
    [input('triviaqa', evalFixture('formats', 'triviaqa_export.jsonl')), {}],
    // Questions with one demonstration each.
    [real('nq', 'naturalquestions/NQ-open.dev.jsonl', 'nq_open.jsonl', 6), { shots: 1 }],
  ];
  const generated: string[] = [];
  for (const [inp, extra] of cases) {
    const examples = inp.examples.filter(fits);
    assert.ok(examples.length >= Math.min(5, inp.examples.length), `${inp.task.id}: too few examples fit`);
    const fitting = { ...inp, examples };
    const a = await evaluateTask(fitting, remote, { ...settings, ...extra });
    const b = await evaluateTask(fitting, local, { ...settings, ...extra });
    assertSame(inp.task.id, a.predictions, b.predictions);
    for (const p of a.predictions) if (p.generated !== undefined) generated.push(p.generated);
    for (const [k, x] of Object.entries(b.result.metrics)) {
      assert.ok(Math.abs(a.result.metrics[k]! - x) <= 1e-6 * Math.max(1, Math.abs(x)), `${inp.task.id} ${k}`);
    }
  }
  // The answers compared are text the model wrote, not only empty strings (the tiny model answers
  // 2 of the fixtures' questions, more of the real files').
  assert.ok(generated.filter((g) => g.trim() !== '').length >= 2, JSON.stringify(generated));
});

test('a boundary the tokenizer merges and a sequence past the window, through the server', async () => {
  const remote = await ServerScorer.connect(url, { apiKey: KEY });
  // "I saw t" + "he": the tokenizer merges " the" across the boundary; both scorers encode "he" alone.
  const merged = { context: 'I saw t', continuations: ['he', 'he cat'] };
  assert.equal(idsAfter(tokenizer.encode('I saw t'), tokenizer.encode('I saw the')), undefined);
  const [r] = await remote.loglikelihood([merged]);
  const [l] = await local.loglikelihood([merged]);
  r!.forEach((s, j) => {
    assert.equal(s.tokens, l![j]!.tokens);
    assert.ok(Math.abs(s.logprob - l![j]!.logprob) <= 1e-4);
  });
  // Past the window the server scores the last maxLen tokens (it refuses longer prompts): the
  // continuation's log-likelihood given the context that fits, computed here on the engine directly.
  const context = 'The Queen said to Alice that the cat would not come back again, '.repeat(3);
  const p = encodePair(tokenizer, context, ' because the rabbit was late');
  const seq = [tokenizer.eosId, ...p.context, ...p.continuation].slice(-maxLen);
  assert.ok(1 + p.context.length + p.continuation.length > maxLen);
  const n = p.continuation.length;
  const [want] = local.engine.scoreContinuations([
    { context: seq.slice(0, -n), continuations: [seq.slice(-n)] },
  ]);
  const scores = await remote.loglikelihood([{ context, continuations: [' because the rabbit was late'] }]);
  const got = scores[0]![0]!;
  assert.equal(got.tokens, n);
  assert.ok(Math.abs(got.logprob - want![0]!.logprob) <= 1e-4, `${got.logprob} vs ${want![0]!.logprob}`);
});

test('generation through the server starts a document as the local scorer does', async () => {
  const remote = await ServerScorer.connect(url, { apiKey: KEY });
  // Short prompts, where the document-start token changes what the tiny model writes.
  const contexts = ['The', 'Question: what is the capital of France?\nAnswer:', 'Once upon a time'];
  const reqs = contexts.map((context) => ({ context, stop: ['\n'], maxTokens: 8, beam: 1 }));
  const got = await remote.generate(reqs);
  assert.deepEqual(got, await local.generate(reqs));
  // Without it the answers differ, so the comparison above can tell.
  const bare = contexts.map((c) => {
    const [r] = local.engine.generate([
      {
        prompt: tokenizer.encode(c),
        maxTokens: 8,
        temperature: 0,
        stopTokens: [tokenizer.eosId],
        stop: ['\n'],
      },
    ]);
    return r!.choices[0]!.text;
  });
  assert.notDeepEqual(bare, got);
});

test('glam eval --server against glam serve reports what the local scorer computes', async () => {
  const schema = evalFixture('parity', 'schema.jsonl');
  const qa = evalFixture('formats', 'triviaqa_export.jsonl');
  const predictions = join(scratch, 'predictions.jsonl');
  const out = await new Promise<string>((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      [
        join(repoRoot(), 'bin', 'glam.js'),
        'eval',
        '--server',
        url,
        '--tasks',
        'winogrande,triviaqa',
        '--data',
        `winogrande=${schema}`,
        '--data',
        `triviaqa=${qa}`,
        '--max-gen-tokens',
        '8',
        '--no-cache',
        '--json',
        '--predictions',
        predictions,
      ],
      { env: { ...process.env, GLAM_THREADS: '1', OPENAI_API_KEY: KEY } },
    );
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c) => {
      stdout += c;
    });
    proc.stderr.on('data', (c) => {
      stderr += c;
    });
    proc.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(stderr))));
  });
  const report = JSON.parse(out) as { scorer: string; results: Record<string, { score: number }> };
  assert.match(report.scorer, /token-id prompts/);
  const got = readFileSync(predictions, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Prediction);
  const want: Prediction[] = [];
  for (const [task, file] of [
    ['winogrande', schema],
    ['triviaqa', qa],
  ] as const) {
    const r = await evaluateTask(input(task, file), local, settings);
    assert.equal(report.results[task]!.score, r.result.score, task);
    want.push(...r.predictions);
  }
  assertSame('cli', got, want);
});
