/**
 * `glam sweep`: run a research plan (a set of seeded `glam train` runs), resumably, then
 * write research.json, plots and a summary table. One `glam train` process per run; runs
 * already finished in --out are not trained again, interrupted ones resume.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Category } from '../data/categories.js';
import { openDataset, toBatch } from '../data/dataset.js';
import { accounting } from '../model/accounting.js';
import { GlamModel } from '../model/glam.js';
import { Workspace } from '../model/workspace.js';
import { listCheckpointSteps, loadModelCheckpoint } from '../train/checkpoints.js';
import {
  BUILTIN_PLANS,
  builtinPlan,
  type CurveRun,
  crossingTokens,
  curvePanels,
  loadPlanFile,
  type PairedGap,
  pairedGaps,
  type ResearchRun,
  readRunMetrics,
  renderSvg,
  researchRun,
  routingPanels,
  runConfig,
  type SweepPlan,
  type SweepRun,
  variantOf,
} from '../train/sweep.js';
import { atomicWriteFileSync, atomicWriteJsonSync } from '../util/atomic.js';
import { readJsonFile } from '../util/files.js';
import { Rng } from '../util/rng.js';
import { intOption, parseCommand } from './args.js';

const HELP = `usage: glam sweep --plan NAME|FILE [--out DIR] [--data DIR] [--jobs N] [--threads N]
                  [--tokens N] [--report-only] [--list]

Runs a research plan: seeded training runs that test GLaM's claims at CPU scale, then writes
OUT/research.json, OUT/<experiment>.svg plots and a table of final validation losses.
Finished runs are skipped and interrupted ones resume, so the same command continues a sweep.

built-in plans (--list describes them): ${BUILTIN_PLANS.join(', ')}

options:
  --plan NAME|FILE   a built-in plan or a JSON plan file (the shape docs/results.md shows)
  --out DIR          sweep directory (default runs/sweep-<plan>)
  --data DIR         the default dataset (default data/default; prepared on first use)
  --jobs N           runs trained at once (default 1)
  --threads N        compute threads per run (default: cores / jobs)
  --tokens N         training tokens per run (default: the plan's, 2,600,000 for built-ins)
  --report-only      train nothing; report on what OUT holds
  --list             list the built-in plans and their runs
  -h, --help         this help`;

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/glam.js');
const DONE_FILE = 'sweep-run.json';

export async function run(args: string[]): Promise<void> {
  const v = parseCommand(
    args,
    {
      plan: { type: 'string' },
      out: { type: 'string' },
      data: { type: 'string', default: 'data/default' },
      jobs: { type: 'string', default: '1' },
      threads: { type: 'string' },
      tokens: { type: 'string' },
      'report-only': { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
    },
    HELP,
  );
  if (v === undefined) return;
  if (v.list) {
    for (const name of BUILTIN_PLANS) {
      const p = builtinPlan(name);
      console.log(`${name}: ${p.description}`);
      for (const r of p.runs) console.log(`  ${r.name.padEnd(26)} ${r.label}`);
    }
    return;
  }
  if (v.plan === undefined)
    throw new Error('--plan is required (a built-in plan or a JSON file); see --help');
  const tokens = v.tokens === undefined ? undefined : intOption('tokens', v.tokens, 1);
  let plan: SweepPlan = (BUILTIN_PLANS as readonly string[]).includes(v.plan)
    ? builtinPlan(v.plan, tokens)
    : loadPlanFile(v.plan);
  if (tokens !== undefined) plan = { ...plan, tokens };
  const out = v.out ?? path.join('runs', `sweep-${plan.name}`);
  const jobs = intOption('jobs', v.jobs, 1, 64);
  const threads =
    v.threads === undefined
      ? Math.max(1, Math.floor(availableParallelism() / jobs))
      : intOption('threads', v.threads, 1, 1024);
  mkdirSync(path.join(out, 'runs'), { recursive: true });

  const dataDirs = await ensureDatasets(plan, out, v.data, v['report-only']);
  if (!v['report-only']) await trainAll(plan, out, dataDirs, jobs, threads);
  report(plan, out, dataDirs);
}

/** Child processes of this sweep, so a signal reaches them (each writes a checkpoint and stops). */
const children = new Set<ChildProcess>();
let interrupted = false;

function glam(args: string[], logFile: string | null): Promise<number> {
  return new Promise((resolve, reject) => {
    const fd = logFile === null ? 'inherit' : openSync(logFile, 'a');
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', fd, fd] });
    if (typeof fd === 'number') closeSync(fd);
    children.add(child);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal === null ? 1 : 128));
    });
  });
}

/** Dataset directories by name, preparing the missing ones (the default corpus, or a plan's data config). */
async function ensureDatasets(
  plan: SweepPlan,
  out: string,
  defaultDir: string,
  reportOnly: boolean,
): Promise<Map<string, string>> {
  const dirs = new Map<string, string>();
  for (const d of plan.datasets) {
    const dir = d.dataConfig === null ? defaultDir : path.join(out, 'data', d.name);
    dirs.set(d.name, dir);
    if (existsSync(path.join(dir, 'manifest.json'))) continue;
    if (reportOnly)
      throw new Error(`dataset '${d.name}' is not prepared (${dir}); run without --report-only`);
    const args = ['prepare', '--out', dir];
    if (d.dataConfig !== null) {
      const config: Record<string, unknown> = { ...d.dataConfig };
      if (d.tokenizerOf !== undefined) {
        const from = dirs.get(d.tokenizerOf);
        if (from === undefined)
          throw new Error(`dataset '${d.name}': tokenizerOf '${d.tokenizerOf}' must come earlier`);
        config.tokenizer = { file: path.resolve(from, 'tokenizer.json') };
      }
      const file = path.join(out, 'data', `${d.name}.config.json`);
      mkdirSync(path.dirname(file), { recursive: true });
      atomicWriteJsonSync(file, config);
      args.push('--data-config', file);
    }
    console.error(`preparing dataset '${d.name}' into ${dir}`);
    if ((await glam(args, null)) !== 0) throw new Error(`glam prepare for dataset '${d.name}' failed`);
  }
  return dirs;
}

function vocabOf(dataDir: string): number {
  const ds = openDataset(dataDir);
  const n = ds.tokenizer.vocabSize;
  ds.close();
  return n;
}

/** What a finished run was trained with; a run directory finished under another spec is never reused. */
function runSpec(plan: SweepPlan, r: SweepRun, dataDir: string): Record<string, unknown> {
  const { tokens, batch, seqLen, evalEvery, evalBatches } = plan;
  return { run: r, tokens, batch, seqLen, evalEvery, evalBatches, data: path.resolve(dataDir) };
}

function finishedRun(runDir: string, spec: Record<string, unknown>): boolean {
  const file = path.join(runDir, DONE_FILE);
  if (!existsSync(file)) return false;
  const saved = readJsonFile(file, 1 << 20, 'sweep run record') as { spec: unknown };
  if (JSON.stringify(saved.spec) !== JSON.stringify(spec)) {
    throw new Error(
      `${runDir} was trained with another spec (see ${file}); use another --out, or remove that run directory yourself`,
    );
  }
  return true;
}

async function trainAll(
  plan: SweepPlan,
  out: string,
  dataDirs: Map<string, string>,
  jobs: number,
  threads: number,
): Promise<void> {
  const todo = plan.runs.filter((r) => {
    const dir = path.join(out, 'runs', r.name);
    return !finishedRun(dir, runSpec(plan, r, dataDirs.get(r.dataset)!));
  });
  console.error(
    `sweep '${plan.name}': ${plan.runs.length} runs, ${plan.runs.length - todo.length} already finished; ` +
      `${todo.length} to train at ${plan.tokens.toLocaleString('en-US')} tokens each, ${jobs} at a time, ${threads} thread(s) each`,
  );
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = true;
    console.error(
      `${sig}: asking the running trainers to checkpoint and stop; run the same command to continue`,
    );
    for (const c of children) c.kill(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const failed: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (!interrupted && next < todo.length) {
      const r = todo[next++]!;
      const dataDir = dataDirs.get(r.dataset)!;
      const runDir = path.join(out, 'runs', r.name);
      mkdirSync(runDir, { recursive: true });
      const modelFile = path.join(runDir, 'model.json');
      atomicWriteJsonSync(modelFile, runConfig(r, vocabOf(dataDir)));
      const resume = listCheckpointSteps(runDir).length > 0;
      const t0 = performance.now();
      console.error(
        `[${next}/${todo.length}] ${r.name}: ${resume ? 'resuming' : 'training'} (log ${path.join(runDir, 'train.log')})`,
      );
      const code = await glam(
        [
          'train',
          ...['--config', modelFile, '--data', dataDir, '--out', runDir, '--seed', String(r.seed)],
          ...['--max-tokens', String(plan.tokens), '--threads', String(threads)],
          ...['--batch-size', String(plan.batch), '--seq-len', String(plan.seqLen)],
          ...['--eval-every', String(plan.evalEvery), '--eval-batches', String(plan.evalBatches)],
          ...r.args,
          ...(resume ? ['--resume'] : []),
        ],
        path.join(runDir, 'train.log'),
      );
      const minutes = ((performance.now() - t0) / 60000).toFixed(1);
      if (code === 0) {
        atomicWriteJsonSync(path.join(runDir, DONE_FILE), {
          spec: runSpec(plan, r, dataDir),
          finished: new Date().toISOString(),
        });
        const m = readRunMetrics(runDir);
        console.error(
          `  ${r.name}: done in ${minutes} min, validation loss ${m.curve.at(-1)?.valLm.toFixed(4) ?? '?'}`,
        );
      } else if (!interrupted) {
        failed.push(r.name);
        console.error(`  ${r.name}: glam train exited with ${code} after ${minutes} min; see its train.log`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, todo.length)) }, worker));
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (interrupted) {
    process.exitCode = 130;
    throw new Error('interrupted; the same command resumes the sweep');
  }
  if (failed.length > 0) throw new Error(`runs failed: ${failed.join(', ')} (their train.log says why)`);
}

/**
 * Validation LM loss of a run's final checkpoint on some categories of a dataset (the quality
 * ablation judges every model on the same held-out curated text). Cached beside the run.
 */
function judgedLoss(
  runDir: string,
  dataDir: string,
  categories: readonly Category[],
  plan: SweepPlan,
): number {
  if (listCheckpointSteps(runDir).length === 0) return Number.NaN;
  const ck = loadModelCheckpoint(runDir);
  const key = `${path.resolve(dataDir)}:${categories.join('+')}:${path.basename(ck.dir)}`;
  const cache = path.join(runDir, 'judged.json');
  if (existsSync(cache)) {
    const c = readJsonFile(cache, 1 << 20, 'judged-loss cache') as { key: string; loss: number };
    if (c.key === key) return c.loss;
  }
  const model = new GlamModel(ck.config);
  const ws = new Workspace(ck.config);
  const ds = openDataset(dataDir);
  let lm = 0;
  let tokens = 0;
  const rng = new Rng(0);
  for (const rows of ds.validationBatches(plan.batch, plan.seqLen, { categories })) {
    const parts = model.forward(ck.weights, ws, toBatch(rows), {
      rng,
      capacityFactor: ck.config.eval_capacity_factor,
    });
    lm += parts.lm * parts.tokens;
    tokens += parts.tokens;
  }
  ds.close();
  const loss = tokens > 0 ? lm / tokens : Number.NaN;
  atomicWriteJsonSync(cache, { key, loss, tokens });
  return loss;
}

const fmtCount = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n.toLocaleString('en-US'));

/** research.json, one SVG per experiment (+ routing health of MoE runs) and summary.md. */
function report(plan: SweepPlan, out: string, dataDirs: Map<string, string>): void {
  const vocab = new Map([...dataDirs].map(([name, dir]) => [name, vocabOf(dir)]));
  const rows: ResearchRun[] = [];
  const crossings: { experiment: string; dense: string; moe: string; tokens: number | null }[] = [];
  const paired: ({ experiment: string } & PairedGap)[] = [];
  const md: string[] = [`# Sweep '${plan.name}'`, '', plan.description, ''];
  for (const ex of plan.experiments) {
    const curves: CurveRun[] = [];
    const exRows: ResearchRun[] = [];
    const metrics = new Map<string, ReturnType<typeof readRunMetrics>>();
    for (const { name, label } of ex.runs) {
      const r = plan.runs.find((x) => x.name === name);
      if (r === undefined) continue;
      const runDir = path.join(out, 'runs', name);
      const m = readRunMetrics(runDir);
      metrics.set(name, m);
      if (m.curve.length === 0) continue;
      const cfg = runConfig(r, vocab.get(r.dataset)!);
      const judged =
        ex.judgedOn === undefined
          ? undefined
          : judgedLoss(
              runDir,
              dataDirs.get(ex.judgedOn.dataset)!,
              ex.judgedOn.categories as Category[],
              plan,
            );
      exRows.push(researchRun(r, ex.id, cfg, plan.seqLen, m, judged));
      curves.push({
        label,
        curve: m.curve,
        flopsPerToken: accounting(cfg, plan.seqLen).train_flops_per_token,
        seed: r.seed,
        variant: variantOf(r),
        dense: cfg.n_experts === 0,
        dataset: r.dataset,
      });
      if (cfg.n_experts > 0 && m.routing.length > 0 && ex.id === plan.experiments[0]!.id && r.seed === 1) {
        atomicWriteFileSync(
          path.join(out, `routing-${name}.svg`),
          renderSvg(routingPanels(label, m.routing), 3),
        );
      }
    }
    // Where each MoE run's validation curve goes below the dense run of the same seed and data.
    for (const d of exRows.filter((x) => x.n_experts === 0)) {
      for (const e of exRows.filter((x) => x.n_experts > 0 && x.seed === d.seed && x.dataset === d.dataset)) {
        crossings.push({
          experiment: ex.id,
          dense: d.name,
          moe: e.name,
          tokens: crossingTokens(metrics.get(d.name)!.curve, metrics.get(e.name)!.curve),
        });
      }
    }
    rows.push(...exRows);
    if (curves.length > 0)
      atomicWriteFileSync(path.join(out, `${ex.id}.svg`), renderSvg(curvePanels(ex.title, curves), 2));
    md.push(`## ${ex.title}`, '');
    if (ex.judgedOn !== undefined)
      md.push(
        `Judged on the ${ex.judgedOn.categories.join(' + ')} validation text of dataset '${ex.judgedOn.dataset}'.`,
        '',
      );
    md.push(
      '| run | experts | active params | total params | tokens | train FLOPs | val loss | dropped (last 100) | least-loaded (last 100) |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const x of exRows) {
      md.push(
        `| ${x.label} | ${x.n_experts} | ${fmtCount(x.active_params)} | ${fmtCount(x.total_params)} | ${fmtCount(x.tokens)} | ` +
          `${x.train_flops.toExponential(2)} | ${x.val_loss.toFixed(4)} | ` +
          `${x.dropped_fraction_last100 === undefined ? '' : `${(100 * x.dropped_fraction_last100).toFixed(1)}%`} | ` +
          `${x.min_load_last100 === undefined ? '' : x.min_load_last100.toFixed(2)} |`,
      );
    }
    md.push('');
    const gaps = pairedGaps(
      exRows.map((x) => ({
        label: x.label,
        variant: variantOf(plan.runs.find((y) => y.name === x.name)!),
        seed: x.seed,
        dataset: x.dataset,
        dense: x.n_experts === 0,
        valLoss: x.val_loss,
      })),
    );
    if (gaps.length > 0) {
      md.push(
        'Final validation loss, MoE minus the dense run of the same seed and data:',
        '',
        '| MoE | seeds | per seed | mean | sd |',
        '| --- | --- | --- | --- | --- |',
      );
      const signed = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(4)}`;
      for (const g of gaps) {
        const each = g.gaps.map((x) => `${signed(x.gap)} (s${x.seed})`).join(', ');
        md.push(
          `| ${g.label} | ${g.gaps.length} | ${each} | ${signed(g.mean)} | ${g.sd === null ? '' : g.sd.toFixed(4)} |`,
        );
      }
      md.push('');
    }
    paired.push(...gaps.map((g) => ({ experiment: ex.id, ...g })));
  }
  if (crossings.length > 0) {
    md.push('## Where MoE goes below dense (validation loss, same seed and data)', '');
    for (const c of crossings)
      md.push(
        `- ${c.experiment}: ${c.moe} below ${c.dense} ${c.tokens === null ? 'never, by the end' : `from ${fmtCount(c.tokens)} tokens on`}`,
      );
    md.push('');
  }
  atomicWriteJsonSync(path.join(out, 'research.json'), {
    plan: plan.name,
    tokens: plan.tokens,
    runs: rows,
    crossings,
    paired,
  });
  atomicWriteFileSync(path.join(out, 'summary.md'), `${md.join('\n')}\n`);
  console.log(md.join('\n'));
  console.log(
    `wrote ${path.join(out, 'research.json')}, ${path.join(out, 'summary.md')} and the plots beside them`,
  );
}
