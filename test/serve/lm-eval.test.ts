/**
 * lm-evaluation-harness's `local-completions` model against `glam serve`, replayed request by request
 * from its source (lm_eval/utils.py: check_remote_tokenizer_support and RemoteTokenizer;
 * lm_eval/models/openai_completions.py: LocalCompletionsAPI._create_payload, parse_logprobs and
 * parse_generations; lm_eval/models/api_models.py: the Authorization header and request batching).
 * The harness cannot be installed here (no PyPI), so this file sends exactly its requests and reads
 * exactly the fields it reads, and checks the answers against the engine's own scoring and generation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Tokenizer } from '../../src/data/tokenizer.js';
import { InferenceEngine } from '../../src/infer/engine.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import type { GlamServer } from '../../src/serve/server.js';
import { ServerTokens } from '../../src/serve/tokens.js';
import { postJson, raw, startServer, TINY } from './helpers.js';

let server: GlamServer;
let base = '';
/** What requests.Session sends: JSON content type, and "Bearer " + OPENAI_API_KEY (empty by default). */
const HEADERS = { 'Content-Type': 'application/json', Authorization: 'Bearer ' };

before(async () => {
  server = await startServer();
  base = server.url;
});
after(() => server.shutdown());

/** RemoteTokenizer.encode: POST /tokenize {"prompt", "add_special_tokens": false}, reads "tokens". */
async function encode(text: string): Promise<number[]> {
  const r = await postJson(base, '/tokenize', { prompt: text, add_special_tokens: false }, HEADERS);
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(r.json.tokens), 'Malformed response from /tokenize endpoint.');
  return r.json.tokens as number[];
}

describe('lm-evaluation-harness local-completions, replayed', () => {
  test('remote tokenizer detection and RemoteTokenizer', async () => {
    // check_remote_tokenizer_support: GET {base}/tokenizer_info must be a dict with "eos_token" ...
    const info = await raw(base, 'GET', '/tokenizer_info', undefined, HEADERS);
    assert.equal(info.status, 200);
    const dict = JSON.parse(info.body) as Record<string, unknown>;
    assert.ok('eos_token' in dict);
    // ... and POST /tokenize {"prompt": "test", "add_special_tokens": false} must give a "tokens" list.
    assert.ok((await encode('test')).length > 0);
    // RemoteTokenizer.eos_token_id = encode(eos_token)[0]; bos_token is None, so prefix_token_id is EOS.
    const tokenizer = Tokenizer.load(`${TINY}/tokenizer.json`);
    assert.equal((await encode(dict.eos_token as string))[0], tokenizer.eosId);
    assert.equal(dict.bos_token, null);
    // decode: POST /detokenize {"tokens"} reads "prompt".
    const ids = await encode('Alice was beginning');
    const d = await postJson(base, '/detokenize', { tokens: ids }, HEADERS);
    assert.equal(d.json.prompt, 'Alice was beginning');
  });

  test('loglikelihood requests: sums and is_greedy as parse_logprobs computes them', async () => {
    const ck = loadCheckpoint(TINY);
    const tokens = new ServerTokens(Tokenizer.load(ck.tokenizerPath!));
    const engine = new InferenceEngine(ck.config, ck.weights, { kvCacheBytes: 4 << 20 });
    const pairs: [string, string][] = [
      ['Alice was beginning to get very', ' tired'],
      ['Alice was beginning to get very', ' happy indeed'],
      ['', 'The Queen'],
      ['Down the rabbit', ' hole'],
    ];
    // TemplateLM: context and continuation encoded apart; an empty context is the prefix token (EOS).
    const reqs = await Promise.all(
      pairs.map(async ([ctx, cont]) => {
        const context = ctx === '' ? [tokens.eosId] : await encode(ctx);
        return { context, continuation: await encode(cont) };
      }),
    );
    // batch_loglikelihood_requests: inp = (context + continuation)[-max_length:], ctxlen = len(context).
    const maxLength = 64 - 1;
    const prompt = reqs.map((r) => [...r.context, ...r.continuation].slice(-maxLength));
    const ctxlens = reqs.map((r) => r.context.length);
    // LocalCompletionsAPI._create_payload(generate=False), posted to base_url with the API header.
    const payload = {
      model: 'tiny-moe',
      prompt,
      temperature: 0,
      max_tokens: 1,
      logprobs: 1,
      seed: 1234,
      echo: true,
    };
    const r = await postJson(base, '/v1/completions', payload, HEADERS);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // parse_logprobs: choices sorted by index, zipped with ctxlens.
    const choices = (
      r.json.choices as {
        index: number;
        logprobs: { token_logprobs: (number | null)[]; top_logprobs: Record<string, number>[] };
      }[]
    )
      .slice()
      .sort((a, b) => a.index - b.index);
    assert.equal(choices.length, reqs.length);
    const want = engine.scoreContinuations(
      reqs.map((q) => ({ context: q.context, continuations: [q.continuation] })),
    );
    choices.forEach((choice, i) => {
      const ctxlen = ctxlens[i]!;
      assert.ok(ctxlen > 0, 'Context length must be greater than 0');
      const lps = choice.logprobs.token_logprobs.slice(ctxlen, -1) as number[];
      const tops = choice.logprobs.top_logprobs.slice(ctxlen, -1);
      const logprob = lps.reduce((a, b) => a + b, 0);
      let isGreedy = true;
      lps.forEach((tok, k) => {
        if (tok !== Math.max(...Object.values(tops[k]!))) isGreedy = false;
      });
      assert.equal(lps.length, reqs[i]!.continuation.length, 'one logprob per continuation token');
      assert.ok(
        Math.abs(logprob - want[i]![0]!.logprob) < 1e-4,
        `request ${i}: ${logprob} vs ${want[i]![0]!.logprob}`,
      );
      assert.equal(isGreedy, want[i]![0]!.greedy, `request ${i} is_greedy`);
    });
  });

  test('generate_until requests: greedy text cut at the stop sequences, as parse_generations reads it', async () => {
    const ck = loadCheckpoint(TINY);
    const tokenizer = Tokenizer.load(ck.tokenizerPath!);
    const engine = new InferenceEngine(ck.config, ck.weights, { kvCacheBytes: 4 << 20, codec: tokenizer });
    const contexts = ['Alice was', 'The Queen said', 'Down'];
    const prompt = await Promise.all(contexts.map((c) => encode(c)));
    // _create_payload(generate=True): until + the EOS string as stop (handle_stop_sequences), seed 1234.
    const payload = {
      prompt,
      model: 'tiny-moe',
      max_tokens: 24,
      temperature: 0,
      stop: ['\n\n', '.', '<eos>'],
      seed: 1234,
    };
    const r = await postJson(base, '/v1/completions', payload, HEADERS);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // parse_generations: tmp[choice.index] = choice.text.
    const texts: string[] = [];
    for (const c of r.json.choices as { index: number; text: string }[]) texts[c.index] = c.text;
    const want = engine.generate(
      prompt.map((p) => ({
        prompt: p,
        maxTokens: 24,
        temperature: 0,
        stop: ['\n\n', '.', '<eos>'],
        stopTokens: [tokenizer.eosId],
      })),
    );
    assert.deepEqual(
      texts,
      want.map((w) => w.choices[0]!.text),
    );
  });
});
