/**
 * Hostile input fails fast with an error naming the file and the problem (issue 9, items 5-10
 * and 15): bounded config sizes, bounded scoring batches, FIFOs and devices refused without
 * blocking, long and damaged metrics plotted, deep JSON, runaway kernel batches, manifest
 * paths kept inside the dataset.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { kernels, referenceKernels } from '../../src/backend/index.js';
import { loadDataConfig } from '../../src/data/config.js';
import { openDataset } from '../../src/data/dataset.js';
import { prepareData } from '../../src/data/prepare.js';
import { scoreTokenRows } from '../../src/infer/score.js';
import { saveCheckpoint } from '../../src/model/checkpoint.js';
import { parseConfig } from '../../src/model/config.js';
import { GlamModel } from '../../src/model/glam.js';
import { initParams } from '../../src/model/init.js';
import { getPreset } from '../../src/model/presets.js';
import { readSafetensors } from '../../src/model/safetensors.js';
import { Rng } from '../../src/util/rng.js';
import { SHIP_BOOK, writeBookCorpus } from '../train/helpers.js';
import { glam, tempRoot } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = tempRoot('hostile');
const data = path.join(root, 'data');

before(async () => {
  await prepareData({ out: data, config: loadDataConfig(writeBookCorpus(root, SHIP_BOOK)) });
});
after(() => rmSync(root, { recursive: true, force: true }));

interface ChildResult {
  loader: string;
  file: string;
  ok: boolean;
  isError?: boolean;
  message?: string;
}

/** Run loaders in a child process with a time limit; a hang or crash fails the test instead of the run. */
function runLoaders(pairs: [string, string][], timeoutMs = 20_000): ChildResult[] {
  const r = spawnSync(process.execPath, [path.join(here, 'loader-child.js'), ...pairs.flat()], {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, GLAM_THREADS: '1' },
  });
  const results = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as ChildResult);
  assert.equal(
    results.length,
    pairs.length,
    `the loaders of ${pairs[results.length]?.join(' ')} did not finish within ${timeoutMs} ms (signal ${r.signal}): ${r.stderr.slice(-500)}`,
  );
  return results;
}

test('item 5: config sizes are bounded before anything is allocated per layer', () => {
  const tiny = getPreset('tiny');
  assert.throws(
    () => parseConfig({ ...tiny, n_layers: 10_000_000 }, 'c.json'),
    /c\.json: 'n_layers' is 10000000, over the limit of 1024/,
  );
  assert.throws(
    () => parseConfig({ ...tiny, n_experts: 1e9 }, 'c.json'),
    /'n_experts' is 1000000000, over the limit of 4096/,
  );
  assert.throws(
    () => parseConfig({ ...tiny, vocab_size: 2 ** 40 }, 'c.json'),
    /'vocab_size' is 1099511627776, over the limit/,
  );
  // The paper's largest presets stay within the limits.
  for (const name of ['glam-64b-64e', 'glam-137b', 'glam-1.7b-256e']) getPreset(name);
  const big = path.join(root, 'big.json');
  writeFileSync(big, JSON.stringify({ ...tiny, n_layers: 1_000_000_000 }));
  const dir = path.join(root, 'big-ckpt');
  mkdirSync(dir);
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({ format: 'glam-moe/1', ...tiny, n_layers: 10_000_000 }),
  );
  const tokens = path.join(root, 'rows.json');
  writeFileSync(tokens, '[[1,2,3]]');
  for (const args of [
    ['info', '--config', big],
    ['init', '--config', big, '--out', path.join(root, 'never')],
    ['score', '--model', dir, '--tokens', tokens],
  ]) {
    const r = glam(args, { timeout: 20_000 });
    assert.equal(r.code, 1, `${args[0]}: exit ${r.code} signal; ${r.stderr.slice(-300)}`);
    assert.match(r.stderr, /'n_layers' is \d+, over the limit of 1024/);
  }
});

test('item 6: scoring runs in bounded batches; the result does not depend on the batching when dropless', () => {
  const cfg = { ...getPreset('tiny-moe'), max_seq_len: 16 };
  const model = new GlamModel(cfg);
  const weights = initParams(cfg, 2);
  const rng = new Rng(4);
  const rows = Array.from({ length: 1100 }, () => Array.from({ length: 17 }, () => rng.int(cfg.vocab_size)));
  const batches: number[] = [];
  const forward = model.forward.bind(model);
  model.forward = (w, ws, b, opts) => {
    batches.push(b.batch * b.seqLen);
    return forward(w, ws, b, opts);
  };
  const whole = scoreTokenRows(model, weights, rows, { capacityFactor: 0 });
  assert.ok(Math.max(...batches) <= 16384, `largest forward pass ${Math.max(...batches)} tokens`);
  assert.ok(batches.length >= 2);
  batches.length = 0;
  const small = scoreTokenRows(model, weights, rows, { capacityFactor: 0, maxBatchTokens: 160 });
  assert.ok(Math.max(...batches) <= 160);
  assert.equal(small.tokens, 1100 * 16);
  assert.ok(Math.abs(small.lm_loss - whole.lm_loss) < 1e-5, `${small.lm_loss} vs ${whole.lm_loss}`);
  assert.ok(Math.abs(small.z_loss - whole.z_loss) < 1e-4, `${small.z_loss} vs ${whole.z_loss}`);
});

describe('item 7: a FIFO or device where a file should be is refused at once; JSON reads are bounded', () => {
  test('every loader', () => {
    const dir = path.join(root, 'fifo');
    mkdirSync(dir);
    const fifo = (name: string): string => {
      const p = path.join(dir, name);
      const r = spawnSync('mkfifo', [p]);
      assert.equal(r.status, 0, 'mkfifo');
      return p;
    };
    // Checkpoints whose config.json, model.safetensors or trainer-state.json is a FIFO.
    const cfg = { ...getPreset('tiny'), vocab_size: 400 };
    const ck = (name: string): string => {
      const d = path.join(dir, name);
      saveCheckpoint(d, cfg, initParams(cfg, 0));
      return d;
    };
    const ckConfig = ck('ck-config');
    rmSync(path.join(ckConfig, 'config.json'));
    fifo('ck-config/config.json');
    const ckModel = ck('ck-model');
    rmSync(path.join(ckModel, 'model.safetensors'));
    fifo('ck-model/model.safetensors');
    const ckState = ck('ck-state');
    fifo('ck-state/trainer-state.json');
    // A dataset whose manifest, tokenizer or shard is a FIFO.
    const ds = (name: string, file: string): string => {
      const d = path.join(dir, name);
      cpSync(data, d, { recursive: true });
      rmSync(path.join(d, file));
      fifo(`${name}/${file}`);
      return d;
    };
    const big = path.join(dir, 'huge.json');
    writeFileSync(big, `{"x": "${'a'.repeat(17 << 20)}"}`);
    const cases: [string, string, RegExp][] = [
      ['config', fifo('config.json'), /config\.json: not a regular file \(a FIFO/],
      ['config', '/dev/zero', /\/dev\/zero.*not a regular file \(a character device\)/],
      ['config', big, /huge\.json: 17\.0 MiB is over the 16 MiB limit for a model config/],
      ['checkpoint', ckConfig, /ck-config\/config\.json: not a regular file/],
      ['checkpoint', ckModel, /ck-model\/model\.safetensors: not a regular file/],
      ['training', ckState, /ck-state\/trainer-state\.json: not a regular file/],
      ['safetensors', '/dev/zero', /\/dev\/zero: not a regular file/],
      ['tokenizer', fifo('tokenizer.json'), /tokenizer\.json: not a regular file/],
      ['tokenizer', '/dev/zero', /\/dev\/zero: not a regular file/],
      ['tokens', fifo('tokens.json'), /tokens\.json: not a regular file/],
      ['tokens', '/dev/zero', /\/dev\/zero: not a regular file/],
      ['data-config', fifo('data.json'), /data\.json: not a regular file/],
      ['data-config', big, /huge\.json: .* over the 16 MiB limit/],
      ['dataset', ds('ds-manifest', 'manifest.json'), /ds-manifest\/manifest\.json: not a regular file/],
      ['dataset', ds('ds-tokenizer', 'tokenizer.json'), /ds-tokenizer\/tokenizer\.json: not a regular file/],
      [
        'dataset',
        ds('ds-shard', 'train/books-00000.bin'),
        /ds-shard\/train\/books-00000\.bin: not a regular file/,
      ],
    ];
    const results = runLoaders(cases.map(([l, p]) => [l, p]));
    results.forEach((r, i) => {
      assert.equal(r.ok, false, `${r.loader} ${r.file} loaded`);
      assert.equal(r.isError, true);
      assert.match(r.message!, cases[i]![2], `${r.loader} ${r.file}`);
    });
  });
});

test('item 8: plot draws a long run, records without expert_load, and a last line cut short', () => {
  const run = path.join(root, 'long-run');
  mkdirSync(run);
  const lines: string[] = [];
  for (let step = 1; step <= 50_000; step++) {
    const rec: Record<string, unknown> = {
      step,
      loss: 6 / Math.sqrt(step),
      lm_loss: 6 / Math.sqrt(step),
      aux_loss: 1.01,
      z_loss: 20,
      lr: 0.01,
      load_balance: 1.2,
      dropped_fraction: 0.01,
      expert_load: [[0.5, 0.5]],
    };
    if (step % 1000 === 0) rec.val_loss = 6.1 / Math.sqrt(step);
    if (step === 7) delete rec.expert_load;
    lines.push(JSON.stringify(rec));
  }
  writeFileSync(path.join(run, 'metrics.jsonl'), `${lines.join('\n')}\n{"step": 50001, "loss": 0.0`);
  const r = glam(['plot', run]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /50000 steps/);
  assert.match(r.stderr, /metrics\.jsonl:50001: skipped the last line, cut short/);
  const svg = readFileSync(path.join(run, 'curves.svg'), 'utf8');
  assert.ok(svg.length < 2_000_000, `svg is ${svg.length} bytes`);
  // A damaged line in the middle is an error naming it.
  writeFileSync(path.join(run, 'metrics.jsonl'), `${lines[0]}\n{oops\n${lines[1]}\n`);
  const bad = glam(['plot', run]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /metrics\.jsonl:2: not valid JSON/);
});

test('item 9: a safetensors shape nested 200,000 deep is an error naming the file', () => {
  const file = path.join(root, 'deep.safetensors');
  const shape = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
  const header = Buffer.from(`{"w":{"dtype":"F32","shape":${shape},"data_offsets":[0,0]}}`);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(file, Buffer.concat([len, header]));
  assert.throws(
    () => readSafetensors(file),
    (err: Error) =>
      err.message.startsWith(
        `${file}: tensor 'w': shape must be an array of non-negative integers, got [[[[...]]]]`,
      ),
  );
});

test('item 10: a zero-stride strided batch of 2^53 is refused at once; work is bounded by the buffers', () => {
  // In a child with a time limit: before the fix this call ran for years.
  const script = `
    import { kernels, referenceKernels } from ${JSON.stringify(path.resolve(here, '../../src/backend/index.js'))};
    import { mat } from ${JSON.stringify(path.resolve(here, '../../src/backend/mat.js'))};
    for (const k of [kernels(), referenceKernels]) {
      const f = (n) => new Float32Array(n);
      try {
        k.sgemmStridedBatched(2 ** 53, 1, mat(f(4), 2, 2), 0, mat(f(4), 2, 2), 0, 0, mat(f(4), 2, 2), 0);
        console.log('ran');
      } catch (e) { console.log(e.message); }
      // Empty outputs: nothing to compute, whatever the batch.
      k.sgemmStridedBatched(2 ** 53, 1, mat(f(4), 0, 2), 0, mat(f(4), 2, 2), 0, 0, mat(f(4), 0, 2), 0);
      console.log('empty ok');
    }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, GLAM_THREADS: '1' },
  });
  assert.equal(r.signal, null, 'finished in time');
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 4, r.stdout + r.stderr);
  for (const i of [0, 2]) {
    assert.match(
      lines[i]!,
      /^sgemmStridedBatched: strideC is 0 with batch 9007199254740992: every product would write the same c \[2,2\]$/,
    );
    assert.equal(lines[i + 1], 'empty ok');
  }
  // Outputs apart are fine (the attention layer's use), on both backends alike.
  for (const k of [kernels(), referenceKernels]) {
    const c = new Float32Array(8);
    k.sgemmStridedBatched(
      2,
      1,
      { data: Float32Array.of(1, 0, 0, 1), offset: 0, rows: 2, cols: 2, ld: 2, trans: false },
      0,
      { data: Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8), offset: 0, rows: 2, cols: 2, ld: 2, trans: false },
      4,
      0,
      { data: c, offset: 0, rows: 2, cols: 2, ld: 2, trans: false },
      4,
    );
    assert.deepEqual([...c], [1, 2, 3, 4, 5, 6, 7, 8]);
  }
});

describe('item 15: manifest paths stay inside the dataset; malformed fields are named', () => {
  const manifest = () => JSON.parse(readFileSync(path.join(data, 'manifest.json'), 'utf8'));
  // biome-ignore lint/suspicious/noExplicitAny: mutating parsed JSON of a known shape, field by field
  type Json = Record<string, any>;
  const cases: [string, (m: Json) => void, RegExp][] = [
    [
      'tokenizer outside',
      (m) => (m.tokenizer = '../other/tokenizer.json'),
      /tokenizer "\.\.\/other\/tokenizer\.json" must be a relative path inside the dataset directory/,
    ],
    [
      'absolute tokenizer',
      (m) => (m.tokenizer = '/etc/passwd'),
      /tokenizer "\/etc\/passwd" must be a relative path inside/,
    ],
    ['missing tokenizer', (m) => delete m.tokenizer, /tokenizer must be a file name, got nothing/],
    [
      'shard outside',
      (m) => (m.splits.train.books.shards[0].file = '../../secret.bin'),
      /splits\.train\.books\.shards\[0\]\.file "\.\.\/\.\.\/secret\.bin" must be a relative path inside/,
    ],
    [
      'non-string shard file',
      (m) => (m.splits.train.books.shards[0].file = 7),
      /splits\.train\.books\.shards\[0\]\.file must be a file name, got 7/,
    ],
    [
      'null shard',
      (m) => (m.splits.train.books.shards = [null]),
      /splits\.train\.books\.shards\[0\] must be an object \{file, tokens\}, got null/,
    ],
    [
      'shards not an array',
      (m) => (m.splits.valid.books.shards = 'x'),
      /splits\.valid\.books\.shards must be an array/,
    ],
    [
      'negative tokens',
      (m) => (m.splits.train.books.shards[0].tokens = -5),
      /shards\[0\]\.tokens must be a non-negative integer, got -5/,
    ],
    ['weights null', (m) => (m.weights = null), /missing weights/],
  ];
  for (const [name, mutate, pattern] of cases) {
    test(name, () => {
      const dir = path.join(root, `manifest-${name.replace(/\W+/g, '-')}`);
      cpSync(data, dir, { recursive: true });
      const m = manifest();
      mutate(m);
      writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
      assert.throws(
        () => openDataset(dir),
        (err: Error) =>
          err.name === 'DataError' &&
          err.message.includes(path.join(dir, 'manifest.json')) &&
          pattern.test(err.message),
      );
    });
  }
});
