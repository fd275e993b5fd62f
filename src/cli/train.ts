/** `glam train`: train a GLaM model on a prepared dataset (preparing the default corpus if needed). */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { kernels, parsePrecision } from '../backend/index.js';
import { DEFAULT_VOCAB_SIZE, defaultDataConfig } from '../data/config.js';
import { type Dataset, openDataset, toBatch, validatePosition } from '../data/dataset.js';
import type { Communicator } from '../dist/comm.js';
import { launchInfo, openCommunicator } from '../dist/launch.js';
import type { ParallelMode } from '../dist/parallel.js';
import { launchLocalRanks, parseParallelMode, type RankSetup, setupRank, shareCores } from '../dist/run.js';
import { loadCheckpointConfig } from '../model/checkpoint.js';
import type { GlamConfig } from '../model/config.js';
import { type Batch, GlamModel } from '../model/glam.js';
import { initParams } from '../model/init.js';
import { lrScalesByKind, PARAM_KINDS, type ParamKind } from '../model/params.js';
import { resolveConfig } from '../model/presets.js';
import { createOptimizer, type OptimizerConfig, RECIPE_OPTIMIZERS } from '../optim/create.js';
import type { OptimizerKind } from '../optim/optimizer.js';
import { checkCooldownFraction } from '../optim/schedule.js';
import { listCheckpointSteps, loadNewestUsable } from '../train/checkpoints.js';
import { checkFreshRun, lockRun } from '../train/run-dir.js';
import {
  type BatchSource,
  DEFAULT_TRAIN_SETTINGS,
  RECIPE_SCHEDULE,
  type TrainSettings,
  train,
} from '../train/trainer.js';
import { READ_LIMITS, readTextFile } from '../util/files.js';
import { formatDuration } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { intOption, numberOption } from './args.js';
import { prepareWithProgress } from './prepare.js';
import { TrainProgress } from './train-progress.js';

const DEFAULT_CONFIG = 'small-moe';
const DEFAULT_DATA = 'data/default';
const DEFAULT_MINUTES = 10;
const D = DEFAULT_TRAIN_SETTINGS;
const DECAY_START = RECIPE_SCHEDULE.decay_start;

const HELP = `usage: glam train [--config NAME|FILE] [--data DIR] [--max-steps N | --max-tokens N | --time MIN]
                  [--seed N] [--out DIR] [--resume] [options]

Trains a GLaM model with GLaM's recipe (Adafactor, constant-then-rsqrt learning rate,
load-balancing and z losses, NaN-step skipping, roll-back on divergence). With no
arguments: prepares the bundled corpus if needed and trains the '${DEFAULT_CONFIG}' preset for
${DEFAULT_MINUTES} minutes into runs/${DEFAULT_CONFIG}.

options:
  --config NAME|FILE    model preset or config.json (default ${DEFAULT_CONFIG}); a preset's vocab_size
                        follows the dataset's tokenizer
  --data DIR            prepared dataset (default ${DEFAULT_DATA}: the bundled corpus with its own
                        ${DEFAULT_VOCAB_SIZE}-token vocabulary, prepared on first use)
  --max-steps N         stop after N optimizer steps
  --max-tokens N        stop after N training tokens (instead of --max-steps)
  --time MIN            stop after MIN minutes (default ${DEFAULT_MINUTES} when no limit is given; with
                        --max-steps or --max-tokens, whichever comes first)
  --seed N              seed of initialisation, data order and routing coins (default 0)
  --out DIR             run directory: metrics.jsonl, checkpoints/ (default runs/<config>)
  --resume              continue from the latest checkpoint in --out (a damaged one is skipped)
  --overwrite           start afresh even if --out holds an earlier run (deletes only the
                        checkpoints and metrics glam wrote there)
  --batch-size N        sequences per micro-batch (default 8)
  --seq-len N           tokens per sequence (default min(128, max_seq_len))
  --grad-accum N        micro-batches per step (default ${D.gradAccum})
  --precision P         matrix products in fp32 (default) or bf16 (operands rounded to bf16, float32
                        sums; weights and optimiser state stay float32)
  --optimizer NAME      adafactor (default) or adamw
  --param-scale on|off  Adafactor: scale each update by the parameter's RMS, so --lr is a relative
                        step (default on; off: absolute steps, as Adafactor without it)
  --lr X                peak learning rate (default ${RECIPE_OPTIMIZERS.adafactor.lr} for adafactor, ${RECIPE_OPTIMIZERS.adamw.lr} for adamw)
  --lr-scale K=X,...    multiply the rate of parameters of kind K by X (kinds: embedding,
                        projection, router, expert, norm, rel_bias; e.g. router=3,expert=0.5)
  --warmup N            linear warm-up steps (default ${D.schedule.warmup_steps})
  --decay-start N       constant-lr steps before inverse-sqrt decay (default ${DECAY_START})
  --cooldown F          cool the rate linearly towards 0 over the last fraction F of the run (default
                        ${D.cooldownFraction ?? 0}; 0: none); a run limited by --time alone starts it at (1 - F) of the
                        time and ends at the step the whole time gives at the pace so far
  --checkpoint-every N  steps between checkpoints (default ${D.checkpointEvery})
  --keep N              checkpoints kept (default ${D.keepLast})
  --eval-every N        steps between validation runs (default ${D.evalEvery})
  --eval-batches N      validation batches per run (default 8; 0: no validation)
  --threads N           compute threads (default: all cores, or GLAM_THREADS; under mpirun the
                        host's cores shared by its ranks)
  --parallel MODE       under mpirun: 'data' (every rank holds the model and trains on its rows of
                        each batch; the default there) or 'expert' (GShard: each rank holds E/R of
                        every MoE layer's experts, tokens travel to them by all-to-all)
  --ranks R             start R ranks on this host through mpirun (Open MPI), --parallel data unless
                        given; across hosts run mpirun yourself (docs/distributed.md)
  -h, --help            this help

Parallel runs: mpirun -np R npx glam train --parallel data|expert ... (as root add
--allow-run-as-root, more ranks than cores --oversubscribe, TCP only --mca btl self,tcp).
--batch-size stays the global batch: each rank trains on batch/R of its rows, so the losses do
not depend on R. Rank 0 writes metrics and checkpoints; every rank reads them (--out must be on
a file system all ranks see).`;

/**
 * Prepare the default dataset: the bundled corpus with the default data config, whose
 * vocabulary (DEFAULT_VOCAB_SIZE) is the default dataset's own, whatever model is trained
 * first; presets adopt the dataset's vocabulary.
 */
async function prepareDefaultDataset(dir: string): Promise<void> {
  const config = defaultDataConfig();
  console.error(
    `No prepared data in ${dir}: preparing the bundled corpus (vocabulary ${config.vocab_size}; once).`,
  );
  await prepareWithProgress({ out: dir, config });
}

/** Adapts a prepared Dataset to the trainer's BatchSource. */
class DatasetSource implements BatchSource {
  private position;

  constructor(
    private readonly ds: Dataset,
    seed: number,
    private readonly batch: number,
    private readonly seqLen: number,
    private readonly evalBatches: number,
    /** In a parallel run: this rank's rows [from, to) of every batch. */
    private readonly share?: { from: number; to: number },
  ) {
    this.position = ds.initialPosition(seed);
  }

  next(): Batch {
    return toBatch(this.ds.nextBatch(this.position, this.batch, this.seqLen, this.share));
  }

  getState(): unknown {
    return structuredClone(this.position);
  }

  setState(state: unknown): void {
    // Checked, then copied field by field (a saved state is a user's file: no deep clone of it).
    const p = validatePosition(state);
    this.position = {
      format: p.format,
      rng: Rng.fromState(p.rng).getState(),
      cursors: Object.fromEntries(
        Object.entries(p.cursors).map(([c, v]) => [c, { offset: v!.offset, epoch: v!.epoch }]),
      ),
      rows: p.rows,
    };
  }

  validation(): Batch[] {
    const all = [...this.ds.validationBatches(this.batch, this.seqLen, { maxBatches: this.evalBatches })];
    const share = this.share;
    if (share === undefined) return all.map(toBatch);
    // Each rank its rows of every full batch (a short last batch cannot be split evenly: left out).
    const n = this.seqLen + 1;
    return all
      .filter((b) => b.rows === this.batch)
      .map((b) =>
        toBatch({
          ...b,
          rows: share.to - share.from,
          tokens: b.tokens.subarray(share.from * n, share.to * n),
          categories: b.categories.slice(share.from, share.to),
        }),
      );
  }
}

const OPTIONS = {
  config: { type: 'string' },
  data: { type: 'string', default: DEFAULT_DATA },
  'max-steps': { type: 'string' },
  'max-tokens': { type: 'string' },
  time: { type: 'string' },
  seed: { type: 'string', default: '0' },
  out: { type: 'string' },
  resume: { type: 'boolean', default: false },
  overwrite: { type: 'boolean', default: false },
  'batch-size': { type: 'string', default: '8' },
  'seq-len': { type: 'string' },
  'grad-accum': { type: 'string', default: String(D.gradAccum) },
  precision: { type: 'string', default: 'fp32' },
  optimizer: { type: 'string', default: 'adafactor' },
  'param-scale': { type: 'string', default: 'on' },
  lr: { type: 'string' },
  'lr-scale': { type: 'string' },
  warmup: { type: 'string', default: String(D.schedule.warmup_steps) },
  'decay-start': { type: 'string', default: String(DECAY_START) },
  cooldown: { type: 'string', default: String(D.cooldownFraction ?? 0) },
  'checkpoint-every': { type: 'string', default: String(D.checkpointEvery) },
  keep: { type: 'string', default: String(D.keepLast) },
  'eval-every': { type: 'string', default: String(D.evalEvery) },
  'eval-batches': { type: 'string', default: '8' },
  threads: { type: 'string' },
  parallel: { type: 'string' },
  ranks: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function cooldownOption(value: string): number {
  const fraction = numberOption('cooldown', value);
  checkCooldownFraction(fraction, '--cooldown');
  return fraction;
}

function parseTrainArgs(args: string[]) {
  return parseArgs({ args, options: OPTIONS });
}

type TrainValues = ReturnType<typeof parseTrainArgs>['values'];

export async function run(args: string[]): Promise<void> {
  const { values: v } = parseTrainArgs(args);
  if (v.help) {
    console.log(HELP);
    return;
  }
  if (v.ranks !== undefined) {
    const ranks = intOption('ranks', v.ranks, 1, 4096);
    if (launchInfo() !== null) throw new Error('--ranks starts mpirun itself: under mpirun, leave it out');
    if (ranks > 1) {
      const mode = parseParallelMode(v.parallel ?? 'data');
      const rest = withoutOptions(args, ['--ranks', '--parallel']);
      process.exitCode = await launchLocalRanks(ranks, rest, mode);
      return;
    }
  }
  // Started by an MPI launcher: one rank of a parallel run.
  const launched = launchInfo();
  let comm: Communicator | undefined;
  let mode: ParallelMode | undefined;
  if (launched !== null || v.parallel !== undefined) {
    mode = parseParallelMode(v.parallel ?? 'data');
    comm = openCommunicator();
    if (v.threads === undefined) shareCores();
  }
  if (v.threads !== undefined) kernels().setThreads(intOption('threads', v.threads, 1, 1024));
  const configName = v.config ?? DEFAULT_CONFIG;
  const outDir = v.out ?? path.join('runs', path.basename(configName).replace(/\.json$/, ''));
  const seed = intOption('seed', v.seed, 0);
  const optimizerKind = v.optimizer;
  if (optimizerKind !== 'adafactor' && optimizerKind !== 'adamw') {
    throw new Error(`--optimizer must be 'adafactor' or 'adamw', got '${optimizerKind}'`);
  }
  const optimizer = optimizerConfig(optimizerKind, v['param-scale']);
  const lr = v.lr === undefined ? RECIPE_OPTIMIZERS[optimizerKind].lr : numberOption('lr', v.lr);
  if (!(lr > 0)) throw new Error(`--lr must be > 0, got ${lr}`);
  const limits: Pick<TrainSettings, 'maxSteps' | 'maxTokens' | 'timeMinutes'> = {};
  if (v['max-steps'] !== undefined && v['max-tokens'] !== undefined)
    throw new Error(
      '--max-steps and --max-tokens are alternatives: pass one of them (--time may go with either)',
    );
  if (v['max-steps'] !== undefined) limits.maxSteps = intOption('max-steps', v['max-steps'], 1);
  if (v['max-tokens'] !== undefined) limits.maxTokens = intOption('max-tokens', v['max-tokens'], 1);
  if (v.time !== undefined) {
    limits.timeMinutes = numberOption('time', v.time);
    if (!(limits.timeMinutes > 0)) throw new Error(`--time must be > 0 minutes, got ${v.time}`);
  }
  if (Object.keys(limits).length === 0) limits.timeMinutes = DEFAULT_MINUTES;

  if (v.resume && v.overwrite)
    throw new Error('--resume continues a run and --overwrite starts it afresh: pass one of them');
  // Hold the run's lock from the checks on (the trainer takes it again, shared); a run
  // directory that does not exist yet is locked by the trainer when it creates it. In a parallel
  // run rank 0 holds it for all ranks.
  const root = (comm?.rank ?? 0) === 0;
  const lock =
    root && existsSync(outDir)
      ? lockRun(outDir, 'glam train', (m) => console.error(`note: ${m}`))
      : undefined;
  try {
    const dist = comm === undefined || mode === undefined ? undefined : { comm, mode };
    await trainCommand(v, configName, outDir, seed, optimizer, lr, limits, dist);
  } finally {
    lock?.release();
  }
  // Every rank finalises MPI after a clean run (a failed rank exits without: mpirun ends the job).
  await comm?.close();
}

/** args without the given options and their values. */
function withoutOptions(args: string[], names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const name = names.find((n) => a === n || a.startsWith(`${n}=`));
    if (name === undefined) out.push(a);
    else if (a === name) i++;
  }
  return out;
}

/** The recipe's optimiser of this kind, with --param-scale applied (Adafactor only). */
function optimizerConfig(kind: OptimizerKind, paramScale: string | undefined): OptimizerConfig {
  if (paramScale !== 'on' && paramScale !== 'off')
    throw new Error(`--param-scale must be 'on' or 'off', got '${paramScale}'`);
  const config = RECIPE_OPTIMIZERS[kind].config;
  if (config.kind !== 'adafactor') return config;
  return { ...config, multiplyByParameterScale: paramScale === 'on' };
}

/** --lr-scale KIND=X[,KIND=X]: learning-rate multipliers by parameter kind. */
export function parseLrScaleOption(value: string): Partial<Record<ParamKind, number>> {
  const out: Partial<Record<ParamKind, number>> = {};
  for (const item of value.split(',')) {
    const [kind, x, extra] = item.split('=');
    if (x === undefined || extra !== undefined)
      throw new Error(`--lr-scale: '${item}' is not KIND=X (e.g. router=3)`);
    if (!(PARAM_KINDS as readonly string[]).includes(kind!))
      throw new Error(`--lr-scale: unknown kind '${kind}' (kinds: ${PARAM_KINDS.join(', ')})`);
    if (out[kind as ParamKind] !== undefined) throw new Error(`--lr-scale: kind '${kind}' given twice`);
    const scale = numberOption('lr-scale', x);
    if (!(scale >= 0)) throw new Error(`--lr-scale: ${kind}'s multiplier must be >= 0, got ${x}`);
    out[kind as ParamKind] = scale;
  }
  return out;
}

function describeOptimizer(o: OptimizerConfig): string {
  if (o.kind !== 'adafactor') return o.kind;
  return o.multiplyByParameterScale ? 'adafactor (relative steps)' : 'adafactor (absolute steps)';
}

async function trainCommand(
  v: TrainValues,
  configName: string,
  outDir: string,
  seed: number,
  optimizer: OptimizerConfig,
  lr: number,
  limits: Pick<TrainSettings, 'maxSteps' | 'maxTokens' | 'timeMinutes'>,
  dist?: { comm: Communicator; mode: ParallelMode },
): Promise<void> {
  const rank = dist?.comm.rank ?? 0;
  const ranks = dist?.comm.size ?? 1;
  if (v.resume && listCheckpointSteps(outDir).length === 0)
    throw new Error(`--resume: no checkpoint in ${outDir}/checkpoints`);
  if (!v.resume && rank === 0) checkFreshRun(outDir, v.overwrite);

  // Model config: from the checkpoint when resuming, else the preset/file (vocab from the data).
  let config: GlamConfig = v.resume
    ? loadNewestUsable(outDir, loadCheckpointConfig).value
    : resolveConfig(configName);
  if (!existsSync(path.join(v.data, 'manifest.json')) || dist !== undefined) {
    const missing = !existsSync(path.join(v.data, 'manifest.json'));
    if (missing && v.data !== DEFAULT_DATA)
      throw new Error(`--data ${v.data}: no prepared dataset (run glam prepare --out ${v.data})`);
    if (missing && rank === 0) await prepareDefaultDataset(v.data);
    // The other ranks wait for rank 0's preparation.
    await dist?.comm.barrier();
  }
  const dataset = openDataset(v.data);
  const vocab = dataset.tokenizer.vocabSize;
  if (v.data === DEFAULT_DATA && vocab !== DEFAULT_VOCAB_SIZE) {
    console.error(
      `warning: ${v.data} has a ${vocab}-token vocabulary, not the default dataset's ${DEFAULT_VOCAB_SIZE} ` +
        '(it was prepared with --vocab-size, or by an older glam that took the vocabulary from the model). ' +
        `Run \`glam prepare\` to rebuild the default dataset, or pass --data for another one.`,
    );
  }
  if (config.vocab_size !== vocab) {
    if (v.resume) {
      throw new Error(
        `${v.data}: tokenizer has ${vocab} ids but the checkpoint's model has vocab_size ${config.vocab_size}`,
      );
    }
    console.error(`note: vocab_size ${config.vocab_size} -> ${vocab} to match the tokenizer of ${v.data}`);
    config = { ...config, vocab_size: vocab };
  }
  const optimizerOfRun: OptimizerConfig =
    v['lr-scale'] === undefined
      ? optimizer
      : { ...optimizer, lrScales: lrScalesByKind(config, parseLrScaleOption(v['lr-scale'])) };
  const batch = intOption('batch-size', v['batch-size'], 1);
  if (batch % ranks !== 0)
    throw new Error(`--batch-size ${batch} is the global batch: it must be a multiple of the ${ranks} ranks`);
  const seqLen =
    v['seq-len'] === undefined ? Math.min(128, config.max_seq_len) : intOption('seq-len', v['seq-len'], 1);
  if (seqLen > config.max_seq_len)
    throw new Error(`--seq-len ${seqLen} exceeds the model's max_seq_len ${config.max_seq_len}`);
  const settings: TrainSettings = {
    ...DEFAULT_TRAIN_SETTINGS,
    ...limits,
    seed,
    gradAccum: intOption('grad-accum', v['grad-accum'], 1),
    precision: parsePrecision(v.precision),
    schedule: {
      kind: 'rsqrt',
      peak_lr: lr,
      warmup_steps: intOption('warmup', v.warmup, 0),
      decay_start: intOption('decay-start', v['decay-start'], 1),
    },
    cooldownFraction: cooldownOption(v.cooldown),
    checkpointEvery: intOption('checkpoint-every', v['checkpoint-every'], 1),
    keepLast: intOption('keep', v.keep, 1),
    evalEvery: intOption('eval-every', v['eval-every'], 1),
  };
  const source = new DatasetSource(
    dataset,
    seed,
    batch,
    seqLen,
    intOption('eval-batches', v['eval-batches'], 0),
    dist === undefined ? undefined : { from: (rank * batch) / ranks, to: ((rank + 1) * batch) / ranks },
  );

  const tokensPerStep = batch * seqLen * settings.gradAccum;
  const total =
    limits.maxSteps ?? (limits.maxTokens !== undefined ? Math.ceil(limits.maxTokens / tokensPerStep) : 0);
  // In a parallel run, rank 0 alone reports.
  const quiet = rank !== 0;
  const bar = new TrainProgress({
    totalSteps: total,
    timeBudget: limits.timeMinutes === undefined ? 0 : limits.timeMinutes * 60,
  });
  let setup: RankSetup | undefined;
  if (dist !== undefined) {
    setup = setupRank(dist.comm, config, dist.mode);
    if (config.n_experts > 0 && config.num_groups % ranks !== 0 && !quiet)
      console.error(
        `note: routing groups never span ranks: each of the ${ranks} ranks routes its tokens in one group ` +
          `(num_groups ${config.num_groups} -> ${ranks} in all)`,
      );
  }
  if (!quiet)
    console.error(
      `training ${configName} (${config.n_experts > 0 ? `${config.n_experts} experts` : 'dense'}) on ${v.data}: ` +
        `${batch}x${seqLen} tokens x ${settings.gradAccum} per step, ${describeOptimizer(optimizerOfRun)}, lr ${lr}${v['lr-scale'] === undefined ? '' : ` (x ${v['lr-scale']})`}; ${kernels().describe()}${settings.precision === 'bf16' ? ', bf16 products' : ''}; out ${outDir}` +
        (setup === undefined ? '' : `; ${setup.parallel.description}`),
    );

  const stopSignal = { stop: false };
  const onSignal = (sig: string) => {
    if (stopSignal.stop) process.exit(130); // second signal: leave now (checkpoints are atomic)
    stopSignal.stop = true;
    bar.log(`${sig}: stopping after this step and writing a checkpoint (again to quit at once)`);
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);
  try {
    const full = initParams(config, seed);
    const weights = setup === undefined ? full : setup.weights(full);
    const res = await train({
      model: setup?.model ?? new GlamModel(config),
      weights,
      ...(setup === undefined ? {} : { parallel: setup.parallel }),
      optimizer: createOptimizer(weights, optimizerOfRun),
      data: source,
      outDir,
      settings,
      tokenizer: readTextFile(
        path.join(v.data, dataset.manifest.tokenizer),
        READ_LIMITS.tokenizer,
        'tokenizer',
      ),
      resume: v.resume,
      stopSignal,
      hooks: quiet
        ? {}
        : {
            onStep: (r) => bar.step(r),
            onEvent: (m) => bar.log(m),
          },
    });
    if (quiet) return;
    bar.finish(res.step, res.lastLoss, res.stoppedBySignal);
    const val = bar.validation;
    console.log(
      `${res.stoppedBySignal ? 'stopped' : 'done'}: ${res.step} steps, ${res.tokensSeen.toLocaleString('en-US')} tokens, ` +
        `final loss ${res.lastLoss.toFixed(4)}` +
        `${val === undefined ? '' : `, validation loss ${val.loss.toFixed(4)} (step ${val.step})`}, ` +
        `${res.skippedSteps} skipped steps, ${res.rollbacks} roll-backs, ${formatDuration(performance.now() / 1000)} wall`,
    );
    console.log(`checkpoint: ${res.checkpoint}`);
    console.log(`metrics:    ${path.join(outDir, 'metrics.jsonl')} (plot: npx glam plot ${outDir})`);
    console.log(`generate:   npx glam generate --model ${outDir} --prompt "The "`);
    if (res.stoppedBySignal) process.exitCode = 130;
  } finally {
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
    dataset.close();
  }
}
