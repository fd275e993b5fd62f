/**
 * `glam serve` through the official `openai` client: streamed and non-streamed text agree; eight
 * concurrent clients with fixed seeds get exactly what each gets alone; echo + logprobs agree with
 * `glam score` (the training model's forward); the fields of OpenAI's and vLLM's protocol.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { Tokenizer } from '../../src/data/tokenizer.js';
import { scoreTokenRows } from '../../src/infer/score.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { GlamModel } from '../../src/model/glam.js';
import type { GlamServer } from '../../src/serve/server.js';
import { startServer, TINY } from './helpers.js';

let server: GlamServer;
let client: OpenAI;
const tokenizer = Tokenizer.load(`${TINY}/tokenizer.json`);

before(async () => {
  server = await startServer({ parallel: 8 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(() => server.shutdown());

/** The concatenated text of a streamed completion, per choice index, and its finish reasons. */
async function streamed(params: Omit<OpenAI.CompletionCreateParamsStreaming, 'stream'>) {
  const texts: string[] = [];
  const finish: (string | null)[] = [];
  let usage: OpenAI.CompletionUsage | undefined;
  const stream = await client.completions.create({
    ...params,
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      texts[c.index] = (texts[c.index] ?? '') + c.text;
      if (c.finish_reason !== null) finish[c.index] = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  return { texts, finish, usage };
}

describe('glam serve through the openai client', () => {
  test('models lists the served model', async () => {
    const list = await client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      ['tiny-moe'],
    );
  });

  test('streamed and non-streamed text are identical (greedy, sampled with a seed, n choices, stop strings)', async () => {
    const cases: Omit<OpenAI.CompletionCreateParamsNonStreaming, 'stream'>[] = [
      { model: 'tiny-moe', prompt: 'The ship', max_tokens: 20, temperature: 0 },
      { model: 'tiny-moe', prompt: 'Alice was', max_tokens: 24, temperature: 0.9, top_p: 0.9, seed: 7, n: 3 },
      { model: 'tiny-moe', prompt: ['One', 'Two two'], max_tokens: 12, temperature: 1, seed: 1 },
      { model: 'tiny-moe', prompt: 'The ship', max_tokens: 30, temperature: 0, stop: [' the'] },
    ];
    for (const params of cases) {
      const whole = await client.completions.create({ ...params, stream: false });
      const parts = await streamed(params);
      assert.deepEqual(
        parts.texts,
        whole.choices.map((c) => c.text),
        JSON.stringify(params),
      );
      assert.deepEqual(
        parts.finish,
        whole.choices.map((c) => c.finish_reason),
      );
      assert.deepEqual(parts.usage, whole.usage);
    }
    const stopped = await client.completions.create({ ...cases[3]!, stream: false });
    assert.equal(stopped.choices[0]!.finish_reason, 'stop');
    assert.ok(!stopped.choices[0]!.text.includes(' the'), 'the stop string is removed with what follows');
  });

  test('eight concurrent clients with fixed seeds get exactly what they get one at a time', async () => {
    const requests = Array.from({ length: 8 }, (_, i) => ({
      model: 'tiny-moe',
      prompt: ['The ship', 'Alice', 'It was', 'Down the', 'She', 'A', 'The Queen', 'Why'][i]!,
      max_tokens: 16 + i,
      temperature: 0.8,
      seed: 100 + i,
      logprobs: 2,
    }));
    const alone: OpenAI.Completion[] = [];
    for (const r of requests) alone.push(await client.completions.create(r));
    const together = await Promise.all(requests.map((r) => client.completions.create(r)));
    together.forEach((t, i) => {
      assert.equal(t.choices[0]!.text, alone[i]!.choices[0]!.text, `client ${i}`);
      assert.deepEqual(
        t.choices[0]!.logprobs,
        alone[i]!.choices[0]!.logprobs,
        `client ${i} logprobs (bitwise)`,
      );
    });
  });

  test('echo + logprobs with max_tokens 0 equal `glam score` of the prompt', async () => {
    const ck = loadCheckpoint(TINY);
    const ids = tokenizer.encode('Alice was beginning to get very tired of sitting by her sister');
    const r = await client.completions.create({
      model: 'tiny-moe',
      prompt: ids,
      max_tokens: 0,
      echo: true,
      logprobs: 1,
      temperature: 0,
    });
    const lp = r.choices[0]!.logprobs!;
    assert.equal(lp.token_logprobs!.length, ids.length);
    assert.equal(lp.token_logprobs![0], null);
    assert.equal(r.usage!.completion_tokens, 0);
    const sum = (lp.token_logprobs!.slice(1) as number[]).reduce((a, b) => a + b, 0);
    const score = scoreTokenRows(new GlamModel(ck.config), ck.weights, [ids], { capacityFactor: 0 });
    assert.ok(
      Math.abs(sum + score.lm_loss * score.tokens) < 1e-3 * score.tokens,
      `echo logprobs sum ${sum}, glam score ${-score.lm_loss * score.tokens}`,
    );
    // Greedy positions: the token's logprob equals the largest alternative exactly (how clients test it).
    const top = lp.top_logprobs!.slice(1) as Record<string, number>[];
    const greedy = top.filter((t, i) => Math.max(...Object.values(t)) === lp.token_logprobs![i + 1]);
    assert.ok(greedy.length > 0 && greedy.length < top.length);
  });

  test("vLLM's return_token_ids, n choices' indexes, logit bias", async () => {
    const ids = tokenizer.encode('The ship');
    const params = {
      model: 'tiny-moe',
      prompt: [ids, ids],
      max_tokens: 5,
      temperature: 0,
      n: 2,
      logit_bias: { '100': 100 },
      return_token_ids: true, // vLLM's extension
    };
    const r = (await client.completions.create(params)) as unknown as OpenAI.Completion & {
      choices: { prompt_token_ids: number[]; token_ids: number[] }[];
    };
    assert.deepEqual(
      r.choices.map((c) => c.index),
      [0, 1, 2, 3],
    );
    for (const c of r.choices) {
      assert.deepEqual(c.prompt_token_ids, ids);
      assert.deepEqual(c.token_ids, [100, 100, 100, 100, 100]);
      assert.equal(c.text, tokenizer.decode([100, 100, 100, 100, 100]));
    }
    assert.deepEqual(r.usage, {
      prompt_tokens: 2 * ids.length,
      completion_tokens: 20,
      total_tokens: 2 * ids.length + 20,
    });
  });

  test('errors come back as OpenAI errors the client understands', async () => {
    await assert.rejects(
      client.completions.create({ model: 'tiny-moe', prompt: 'x', max_tokens: 64 }),
      (err: unknown) =>
        err instanceof OpenAI.BadRequestError &&
        /This model's maximum context length is 64 tokens\. However, you requested 65 tokens \(1 in the messages, 64 in the completion\)\. Please reduce the length of the messages or completion\./.test(
          err.message,
        ),
    );
    await assert.rejects(
      client.completions.create({ model: 'tiny-moe', prompt: 'x', temperature: -1 }),
      (err: unknown) =>
        err instanceof OpenAI.BadRequestError && (err.error as { param?: string }).param === 'temperature',
    );
  });
});
