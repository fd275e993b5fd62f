/** `glam eval`: GLaM's evaluation protocol on its 29 tasks, from data files the user has. */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { Tokenizer } from '../data/tokenizer.js';
import { ResultCache } from '../eval/cache.js';
import { loadTaskData } from '../eval/data.js';
import { EngineScorer } from '../eval/engine-scorer.js';
import { averages, evaluateTask, type Prediction, type TaskResult } from '../eval/evaluate.js';
import { ModelScorer } from '../eval/model-scorer.js';
import type { Scorer } from '../eval/scorer.js';
import { ServerScorer } from '../eval/server-scorer.js';
import { parseTaskList, TASKS, type TaskSpec, taskMetrics } from '../eval/tasks.js';
import { CONFIG_FILE, loadCheckpoint, MODEL_FILE, TOKENIZER_FILE } from '../model/checkpoint.js';
import { GlamModel } from '../model/glam.js';
import { resolveModelDir } from '../train/checkpoints.js';
import { atomicWriteFileSync } from '../util/atomic.js';
import { ProgressBar } from '../util/progress.js';
import { intOption, parseCommand, requireOption } from './args.js';

const HELP = `usage: glam eval --model DIR --tasks LIST --data PATH [--shots K] [--limit N] [--json]
                 [--predictions FILE.jsonl] [--beam K] [--train PATH] [--seed N]
       glam eval --server URL --tasks LIST --data PATH [...]
       glam eval --list [--json]

GLaM's evaluation protocol (Du et al. 2021): NLU tasks by rank classification (the
candidate with the highest log-likelihood per token; unnormalised for COPA and
ReCoRD), NLG tasks by greedy or beam-search generation stopped at a newline, scored
by exact match / F1 after SQuAD normalisation. lm-evaluation-harness's acc and
acc_norm are reported beside GLaM's score. Scores are 0-100 with a 95% bootstrap
interval; NLG, NLU and overall averages follow.

options:
  --model DIR          checkpoint directory, or a run directory (its latest checkpoint)
  --server URL         evaluate the model behind an OpenAI-compatible completions server
                       (echo + logprobs), e.g. glam serve: prompts go as token ids when it serves
                       its tokenizer (/tokenizer_info, /tokenize), else as text; OPENAI_API_KEY,
                       when set, is sent as the bearer key. With --model too, the checkpoint's
                       tokenizer and context length fit the demonstrations
  --server-model NAME  model name sent to the server (default: the first of /v1/models)
  --context-tokens N   the server model's context length (default: from /v1/models, else 2048)
  --tasks LIST         comma-separated task ids, or all, nlg, nlu (glam eval --list)
  --data PATH          a data file or directory; a directory may hold one folder per task
                       (e.g. piqa/, naturalquestions/). TASK=PATH sets one task's data.
                       May be given more than once.
  --train PATH         the train split for demonstrations (TASK=PATH for one task); without
                       it demonstrations come from the evaluated split, never the example itself
  --shots K|paper      demonstrations per prompt (default 0); 'paper' = the paper's per-task K.
                       Demonstrations that do not fit the model's context are left out.
  --limit N            only the first N examples of each task
  --beam K             NLG decoding: 1 = greedy (default), 4 = GLaM's beam search
  --max-gen-tokens N   longest generated answer (default 32)
  --seed N             seed of the demonstration draw (default 0)
  --scorer NAME        engine (default): the inference engine, each context computed once and
                       its KV cache forked per candidate; recompute: a full forward per candidate
  --batch-tokens N     recompute scorer: batch rows x length per forward pass (default 4096)
  --predictions FILE   write one JSON line per example (context, candidates, prediction, gold)
  --cache DIR          per-example result cache (default ~/.cache/glam-moe/eval)
  --no-cache           neither read nor write the cache
  --json               print one JSON object
  --list               the task ids, their metrics and the formats each accepts
  -h, --help           this help`;

/** TASK=PATH entries keyed by task; plain PATH under '*'. */
function pathOptions(values: string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of values ?? []) {
    const m = /^([a-z0-9_]+)=(.+)$/.exec(v);
    if (m !== null && TASKS.some((t) => t.id === m[1])) out.set(m[1]!, m[2]!);
    else out.set('*', v);
  }
  return out;
}

/** A hash of the checkpoint's config and weights: results cached for one model never serve another. */
export function modelHash(dir: string): string {
  const h = createHash('sha256');
  for (const name of [CONFIG_FILE, MODEL_FILE]) {
    const fd = openSync(path.join(dir, name), 'r');
    try {
      const buf = Buffer.alloc(1 << 20);
      for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
    } finally {
      closeSync(fd);
    }
  }
  return h.digest('hex').slice(0, 24);
}

function listTasks(json: boolean): void {
  const rows = TASKS.map((t) => ({
    id: t.id,
    name: t.name,
    group: t.group,
    metrics: taskMetrics(t),
    few_shot_k: t.fewShot,
    formats: t.formats.map((f) => f.description),
  }));
  if (json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  for (const r of rows) {
    console.log(
      `${r.id.padEnd(11)} ${r.group}  ${r.name} — score ${r.metrics[0]} (also ${r.metrics.slice(1).join(', ') || '-'}), paper K=${r.few_shot_k}`,
    );
    for (const f of r.formats) console.log(`${''.padEnd(17)}${f}`);
  }
}

function table(results: TaskResult[], avg: Record<string, number>): string {
  const rows = results.map((r) => [
    r.task,
    String(r.n),
    r.shots === 0 ? '0' : r.shots_used.toFixed(1),
    r.metric,
    r.score.toFixed(1),
    `[${r.ci95[0].toFixed(1)}, ${r.ci95[1].toFixed(1)}]`,
    Object.entries(r.metrics)
      .filter(([k]) => k !== r.metric)
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(', '),
  ]);
  for (const [k, v] of Object.entries(avg)) rows.push([`average ${k}`, '', '', '', v.toFixed(1), '', '']);
  const head = ['task', 'n', 'shots', 'metric', 'score', '95% CI', 'other metrics'];
  const width = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const right = new Set([1, 2, 4]);
  const line = (cells: string[]) =>
    cells
      .map((x, c) =>
        c === cells.length - 1 ? x : right.has(c) ? x.padStart(width[c]!) : x.padEnd(width[c]!),
      )
      .join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** A checkpoint (or a run's latest) with its tokenizer, checked to agree. */
function loadLocal(model: string) {
  const dir = resolveModelDir(model);
  const ck = loadCheckpoint(dir);
  if (ck.tokenizerPath === undefined)
    throw new Error(`${dir}: no ${TOKENIZER_FILE}; cannot turn text into tokens`);
  const tokenizer = Tokenizer.load(ck.tokenizerPath);
  if (tokenizer.vocabSize !== ck.config.vocab_size) {
    throw new Error(`${dir}: tokenizer has ${tokenizer.vocabSize} ids, the model ${ck.config.vocab_size}`);
  }
  return { dir, config: ck.config, weights: ck.weights, tokenizer };
}

export async function run(args: string[]): Promise<void> {
  const v = parseCommand(
    args,
    {
      model: { type: 'string' },
      server: { type: 'string' },
      'server-model': { type: 'string' },
      'context-tokens': { type: 'string' },
      tasks: { type: 'string' },
      data: { type: 'string', multiple: true },
      train: { type: 'string', multiple: true },
      shots: { type: 'string', default: '0' },
      limit: { type: 'string' },
      beam: { type: 'string', default: '1' },
      'max-gen-tokens': { type: 'string', default: '32' },
      seed: { type: 'string', default: '0' },
      'batch-tokens': { type: 'string', default: '4096' },
      scorer: { type: 'string', default: 'engine' },
      predictions: { type: 'string' },
      cache: { type: 'string' },
      'no-cache': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
    },
    HELP,
  );
  if (v === undefined) return;
  if (v.list) {
    listTasks(v.json);
    return;
  }
  const tasks = parseTaskList(requireOption('eval', 'tasks', v.tasks));
  const data = pathOptions(v.data);
  const train = pathOptions(v.train);
  if (data.size === 0) throw new Error('eval: --data is required (see glam eval --help)');
  const shots = v.shots === 'paper' ? 'paper' : intOption('shots', v.shots, 0);
  const limit = v.limit !== undefined ? intOption('limit', v.limit, 1) : undefined;
  const beam = intOption('beam', v.beam, 1, 64);
  const maxGenTokens = intOption('max-gen-tokens', v['max-gen-tokens'], 1);
  const seed = intOption('seed', v.seed, 0);
  const batchTokens = intOption('batch-tokens', v['batch-tokens'], 1);

  // Load every task's data first: a bad file fails before any model time is spent.
  const inputs = tasks.map((task: TaskSpec) => {
    const p = data.get(task.id) ?? data.get('*');
    if (p === undefined)
      throw new Error(`eval: no --data for task ${task.id} (give --data PATH or --data ${task.id}=PATH)`);
    const d = loadTaskData(task, p);
    const tp = train.get(task.id) ?? train.get('*');
    const tr = tp !== undefined ? loadTaskData(task, tp).examples : undefined;
    return { task, examples: d.examples, train: tr, source: d.source, format: d.format };
  });

  let scorer: Scorer;
  let contextTokens: number;
  let countTokens: (text: string) => number;
  let modelName: string;
  if (v.server !== undefined) {
    const apiKey = process.env.OPENAI_API_KEY;
    const server = await ServerScorer.connect(v.server, {
      model: v['server-model'],
      ...(apiKey ? { apiKey } : {}),
    });
    scorer = server;
    modelName = server.modelId;
    contextTokens =
      v['context-tokens'] !== undefined
        ? intOption('context-tokens', v['context-tokens'], 1)
        : (server.contextLength ?? 2048);
    // Without the model's tokenizer, about 4 characters a token (only used to fit demonstrations).
    countTokens = (text) => Math.ceil(text.length / 4);
    if (v.model !== undefined) {
      const local = loadLocal(v.model);
      countTokens = (text) => local.tokenizer.encode(text).length;
      if (v['context-tokens'] === undefined) contextTokens = local.config.max_seq_len;
    }
  } else {
    if (v.scorer !== 'engine' && v.scorer !== 'recompute') {
      throw new Error(`--scorer must be engine or recompute, got '${v.scorer}'`);
    }
    const { dir, config, weights, tokenizer } = loadLocal(requireOption('eval', 'model', v.model));
    const modelId = modelHash(dir);
    scorer =
      v.scorer === 'engine'
        ? new EngineScorer(config, weights, tokenizer, modelId)
        : new ModelScorer(new GlamModel(config), weights, tokenizer, modelId, {
            batchTokens,
            description: 'full recompute per candidate',
          });
    modelName = dir;
    contextTokens = config.max_seq_len;
    countTokens = (text) => tokenizer.encode(text).length;
  }

  const cacheDir =
    v.cache ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'glam-moe', 'eval');
  const results: TaskResult[] = [];
  const predictions: Prediction[] = [];
  for (const input of inputs) {
    const cache = v['no-cache'] ? undefined : new ResultCache(cacheDir, scorer.modelId, input.task.id);
    let bar: ProgressBar | undefined;
    try {
      const { result, predictions: preds } = await evaluateTask(
        input,
        scorer,
        { shots, seed, limit, beam, maxGenTokens, contextTokens, countTokens },
        cache,
        {
          onStart: (task, total) => {
            bar = new ProgressBar({ total, label: `${task.id.padEnd(10)} `, plainEvery: 50 });
          },
          onProgress: (_task, done, total) => bar?.update(done, `${done}/${total}`),
        },
      );
      bar?.finish(
        `${result.n} examples, ${result.seconds.toFixed(1)} s${result.cached > 0 ? ` (${result.cached} cached)` : ''}`,
      );
      results.push(result);
      predictions.push(...preds);
    } finally {
      cache?.close();
    }
  }
  const avg = averages(results);
  if (v.predictions !== undefined) {
    atomicWriteFileSync(
      v.predictions,
      predictions.map((p) => JSON.stringify(p)).join('\n') + (predictions.length > 0 ? '\n' : ''),
    );
  }
  const s = scorer.stats;
  const tokens = { computed: s.computed, separate: s.separate, padding: s.padding };
  if (v.json) {
    const byTask = Object.fromEntries(results.map((r) => [r.task, r]));
    console.log(
      JSON.stringify(
        { model: modelName, scorer: scorer.description, results: byTask, averages: avg, tokens },
        null,
        2,
      ),
    );
    return;
  }
  console.log(`model ${modelName} (${scorer.description})`);
  console.log(table(results, avg));
  for (const r of results) {
    if (r.shots > 0) console.log(`${r.task}: demonstrations from the ${r.demonstrations}`);
  }
  const saving =
    s.computed > 0
      ? ` (${(s.separate / s.computed).toFixed(2)}x fewer than scoring each candidate separately: ${s.separate})`
      : '';
  console.log(`positions computed ${s.computed}${saving}${s.padding > 0 ? `; padding ${s.padding}` : ''}`);
}
