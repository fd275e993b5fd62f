/**
 * `glam bench <subcommand>`: performance measurements. Each subcommand is an entry of SUBCOMMANDS
 * (a one-line doc and a run function); the measuring code lives in src/bench/.
 */
import { readFileSync } from 'node:fs';
import { kernels, loadNative, parsePrecision } from '../backend/index.js';
import type { IsaKey } from '../backend/native.js';
import { benchDecode, type DecodeDtype, formatDecodeBench } from '../bench/decode.js';
import { benchGemm, benchPeak, parseTrans } from '../bench/gemm.js';
import { benchLayers, formatLayerBench } from '../bench/layers.js';
import { benchMoe, formatMoeBench } from '../bench/moe.js';
import { percent } from '../bench/stats.js';
import { benchTrain, formatTrainBench } from '../bench/train.js';
import { benchComm, COMM_OPS, type CommOp, defaultSizes, formatCommBench } from '../dist/bench.js';
import { benchParallel, formatParallelBench } from '../dist/bench-parallel.js';
import { openCommunicator } from '../dist/launch.js';
import {
  type ConfigProjection,
  formatProjection,
  linkCostsFromFile,
  projectCluster,
  projectionPanels,
  ratesFromFile,
} from '../dist/projection.js';
import { parseParallelMode, shareCores } from '../dist/run.js';
import { resolveConfig } from '../model/presets.js';
import { loadModelCheckpointStored } from '../train/checkpoints.js';
import { renderSvg } from '../train/plot.js';
import { atomicWriteFileSync } from '../util/atomic.js';
import { intOption, numberOption, parseCommand } from './args.js';

interface Subcommand {
  doc: string;
  run(args: string[]): Promise<void>;
}

const GEMM_HELP = `usage: glam bench gemm --m M --n N --k K [--threads T] [--trans NN|NT|TN|TT] [--dtype f32|bf16]
                       [--repeat R] [--json]

Times C = op(A)·op(B) (float32, row-major, tight leading dimensions) with the active kernels and prints
the median GFLOP/s over R samples with its spread.

options:
  --m, --n, --k M  matrix sizes: op(A) is [m,k], op(B) is [k,n]
  --threads T      kernel threads (default: GLAM_THREADS or all cores)
  --trans XY       transposes of A and B (default NN)
  --dtype D        B (the weights) in f32 (sgemm, default) or bf16 (gemmBf16: bf16 operands, float32 sums);
                   also reports the bytes of B read per second (what bounds decode-sized products)
  --repeat R       timed samples (default 15)
  --json           print one JSON object (gflops, ms_median, threads, spread, ...)
  -h, --help       this help`;

const PEAK_HELP = `usage: glam bench peak [--threads T] [--isa avx512|avx2|portable] [--seconds S] [--json]

Measures the machine's FMA throughput for each code path the CPU has (AVX-512, AVX2/FMA, portable):
independent multiply-add chains in that path's registers on T threads (default: every count from 1 to
the number of cores; never more), in ~20 ms trials for S seconds (default 0.5). Each thread times its
chains in its own CPU time, so a trial counts what the cores do while they run them even when other
processes share the machine; the fastest trial is the peak (the machine's capability), the median
trial by the wall clock shows the current load. The path in use (marked) is the one MFU figures are
computed against; an MFU that would exceed 100% is refused as a mismeasured peak.

options:
  --threads T   thread count (default: 1..cores)
  --isa NAME    measure this path only (default: every path the CPU has)
  --seconds S   seconds of trials per thread count (default 0.5)
  --json        print one JSON object
  -h, --help    this help`;

function badDtype(v: string): never {
  throw new Error(`--dtype must be f32 or bf16, got '${v}'`);
}

async function runGemm(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      m: { type: 'string' },
      n: { type: 'string' },
      k: { type: 'string' },
      threads: { type: 'string' },
      trans: { type: 'string', default: 'NN' },
      dtype: { type: 'string', default: 'f32' },
      repeat: { type: 'string', default: '15' },
      json: { type: 'boolean', default: false },
    },
    GEMM_HELP,
  );
  if (values === undefined) return;
  const size = (name: 'm' | 'n' | 'k'): number => {
    const v = values[name];
    if (v === undefined) throw new Error(`bench gemm: --${name} is required (see glam bench gemm --help)`);
    return intOption(name, v, 1);
  };
  const r = benchGemm(kernels(), {
    m: size('m'),
    n: size('n'),
    k: size('k'),
    trans: parseTrans(values.trans),
    threads: values.threads !== undefined ? intOption('threads', values.threads, 1, 1024) : undefined,
    repeat: intOption('repeat', values.repeat, 1),
    dtype: values.dtype === 'bf16' || values.dtype === 'f32' ? values.dtype : badDtype(values.dtype),
  });
  if (values.json) {
    console.log(JSON.stringify(r));
    return;
  }
  console.log(
    `${r.op} ${r.trans} m=${r.m} n=${r.n} k=${r.k} on ${r.backend}\n` +
      `  ${r.gflops.toFixed(1)} GFLOP/s median (min ${r.gflops_min.toFixed(1)}, max ${r.gflops_max.toFixed(1)}), ` +
      `${r.ms_median.toFixed(3)} ms per call, B read at ${r.b_gbytes_per_s.toFixed(1)} GB/s, ` +
      (r.gflops_cpu !== null ? `${r.gflops_cpu.toFixed(1)} GFLOP per CPU-second, ` : '') +
      `spread ${percent(r.spread_iqr)} (IQR/median) over ${r.repeat} samples`,
  );
}

async function runPeak(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      threads: { type: 'string' },
      isa: { type: 'string' },
      seconds: { type: 'string', default: '0.5' },
      json: { type: 'boolean', default: false },
    },
    PEAK_HELP,
  );
  if (values === undefined) return;
  const native = loadNative();
  if (!native.ok) throw new Error(`bench peak needs the native addon, which did not load: ${native.reason}`);
  const seconds = Number(values.seconds);
  if (!(seconds > 0 && seconds <= 60))
    throw new Error(`--seconds must be in (0, 60], got '${values.seconds}'`);
  const info = native.kernels.info();
  const counts =
    values.threads !== undefined
      ? [intOption('threads', values.threads, 1, 1024)]
      : Array.from({ length: info.cores }, (_, i) => i + 1);
  let isas = info.isas;
  if (values.isa !== undefined) {
    const known: string[] = ['avx512', 'avx2', 'portable'];
    if (!known.includes(values.isa))
      throw new Error(`--isa must be one of ${known.join(', ')}, got '${values.isa}'`);
    const isa = values.isa as IsaKey;
    if (!info.isas.includes(isa))
      throw new Error(`--isa ${isa}: this CPU cannot run it (it can run ${info.isas.join(', ')})`);
    isas = [isa];
  }
  const r = benchPeak(native.kernels, counts, seconds, isas);
  if (values.json) {
    const single = r.results.length === 1 ? r.results[0] : undefined;
    console.log(JSON.stringify(single ? { ...r, ...single } : r));
    return;
  }
  console.log(
    `FMA peak per code path: fastest of ~20 ms trials over ${seconds} s (median trial in brackets); ` +
      `in use: ${r.isa}`,
  );
  for (const row of r.results) {
    console.log(
      `  ${(row.isa + (row.isa === r.isa ? '*' : '')).padEnd(10)} ${String(row.threads).padStart(3)} ` +
        `thread${row.threads === 1 ? ' ' : 's'}  ${row.gflops.toFixed(1).padStart(8)} GFLOP/s  ` +
        `(${row.gflops_per_thread.toFixed(1)} per thread) [median ${row.gflops_median.toFixed(1)} over ${row.trials} trials]`,
    );
  }
}

const TRAIN_HELP = `usage: glam bench train [--config NAME|FILE] [--batch B] [--seq T] [--steps N] [--warmup W]
                       [--threads T] [--precision fp32|bf16] [--seed S] [--json]

Training throughput: real steps (forward, backward, the trainer's gradient check, Adafactor) on
synthetic token batches; median tokens/s over the timed steps with its spread, the time per phase,
and MFU = train FLOPs/token (glam info, T = --seq) × tokens/s ÷ the FMA peak of the code path in use
for the thread count (also for --precision bf16, whose vdpbf16ps products can go twice as fast).

options:
  --config NAME|FILE  preset or config file (default small-moe)
  --batch B           sequences per step (default 8)
  --seq T             tokens per sequence (default 128)
  --steps N           timed steps (default 10)
  --warmup W          untimed steps first (default 3)
  --threads T         kernel threads (default: GLAM_THREADS or all cores)
  --precision P       matrix products in fp32 (default) or bf16 (operands rounded to bf16)
  --seed S            parameter and data seed (default 1)
  --json              print one JSON object
  -h, --help          this help`;

const DECODE_HELP = `usage: glam bench decode (--config NAME|FILE | --model DIR) [--batch B] [--prompt-len P] [--new N]
                         [--threads T] [--dtype f32|bf16] [--rounds R] [--json]

Decode throughput of the inference engine (KV cache, continuous batching, expert-grouped MoE steps) against
the memory-bandwidth bound: B greedy sequences of P random prompt tokens each generate N tokens; only the
decode steps are timed. Reports aggregate tokens/s (median [min-max] over R rounds), the bytes of weights
each generated token reads (non-expert weights once per step, plus each step's routed experts once each,
over B) and the fraction of the bandwidth bound: after each timed step a read probe reads exactly the
weights that step read, where they lie, and the bound is the probes' time over the steps' (the memory
holding the weights can read slower than a fresh buffer). Beside it, the fraction against a buffer of the
probe's own (probed before, between and after the rounds): at the run's best pass, and each round against
the probes just before and after it. With --config the weights are random (built in memory: glam-0.1b-64e is 8.3 GB in f32);
the command refuses a model that does not fit in the free memory.

options:
  --config NAME    a preset or config file (random weights)
  --model DIR      a checkpoint or run directory instead
  --batch B        sequences decoding together (default 1)
  --prompt-len P   prompt tokens per sequence (default 32)
  --new N          tokens to generate per sequence (default 32)
  --threads T      kernel threads (default: GLAM_THREADS or all cores)
  --dtype D        f32 (default) or bf16 (matrices stored in bf16: half the bytes)
  --rounds R       timed rounds (default 5)
  --json           print one JSON object
  -h, --help       this help`;

async function runDecode(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      config: { type: 'string' },
      model: { type: 'string' },
      batch: { type: 'string', default: '1' },
      'prompt-len': { type: 'string', default: '32' },
      new: { type: 'string', default: '32' },
      threads: { type: 'string' },
      dtype: { type: 'string', default: 'f32' },
      rounds: { type: 'string', default: '5' },
      json: { type: 'boolean', default: false },
    },
    DECODE_HELP,
  );
  if (values === undefined) return;
  if ((values.config === undefined) === (values.model === undefined)) {
    throw new Error('bench decode: give exactly one of --config NAME and --model DIR (see --help)');
  }
  if (values.dtype !== 'f32' && values.dtype !== 'bf16') {
    throw new Error(`bench decode: --dtype must be f32 or bf16, got '${values.dtype}'`);
  }
  const batch = intOption('batch', values.batch, 1, 4096);
  const promptLen = intOption('prompt-len', values['prompt-len'], 1);
  const newTokens = intOption('new', values.new, 2);
  const rounds = intOption('rounds', values.rounds, 1, 1000);
  if (values.threads !== undefined) kernels().setThreads(intOption('threads', values.threads, 1, 1024));
  let label: string;
  let run: Parameters<typeof benchDecode>[0];
  const log = values.json ? undefined : (line: string) => console.error(line);
  const common = {
    dtype: values.dtype as DecodeDtype,
    batch,
    promptLen,
    newTokens,
    rounds,
    ...(log ? { log } : {}),
  };
  if (values.model !== undefined) {
    const ck = loadModelCheckpointStored(values.model);
    label = ck.dir;
    run = { config: ck.config, weights: ck.weights, ...common };
  } else {
    label = values.config!;
    run = { config: resolveConfig(values.config!), ...common };
  }
  const r = benchDecode(run);
  console.log(values.json ? JSON.stringify({ model: label, ...r }) : formatDecodeBench(r, label));
}

async function runTrain(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      config: { type: 'string', default: 'small-moe' },
      batch: { type: 'string', default: '8' },
      seq: { type: 'string', default: '128' },
      steps: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      threads: { type: 'string' },
      precision: { type: 'string', default: 'fp32' },
      seed: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
    TRAIN_HELP,
  );
  if (values === undefined) return;
  const r = benchTrain({
    config: values.config,
    batch: intOption('batch', values.batch, 1),
    seqLen: intOption('seq', values.seq, 1),
    steps: intOption('steps', values.steps, 1),
    warmup: intOption('warmup', values.warmup, 0),
    threads: values.threads !== undefined ? intOption('threads', values.threads, 1, 1024) : undefined,
    precision: parsePrecision(values.precision),
    seed: intOption('seed', values.seed, 0),
    onStep: values.json
      ? undefined
      : (i, ms, timed) =>
          process.stderr.write(`\r${timed ? 'step' : 'warm-up'} ${i + 1}: ${ms.toFixed(0)} ms   `),
  });
  if (!values.json) process.stderr.write('\n');
  console.log(values.json ? JSON.stringify(r) : formatTrainBench(r));
}

const MOE_HELP = `usage: glam bench moe [--threads T] [--repeat R] [--json]

Forward+backward of an MoE layer (4096 tokens, d_model 256, 64 experts of d_ff 512, top-2, dropless)
against a dense gated-GELU layer with the same activated FLOPs; medians of R interleaved runs and
the ratio MoE/dense (goal <= 1.25).`;

async function runMoe(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      threads: { type: 'string' },
      repeat: { type: 'string', default: '7' },
      json: { type: 'boolean', default: false },
    },
    MOE_HELP,
  );
  if (values === undefined) return;
  if (values.threads !== undefined) kernels().setThreads(intOption('threads', values.threads, 1, 1024));
  const r = benchMoe({ repeats: intOption('repeat', values.repeat, 1) });
  console.log(values.json ? JSON.stringify(r) : formatMoeBench(r));
}

const COMM_HELP = `usage: mpirun -np R glam bench comm [--ops LIST] [--max-bytes N] [--repeat N] [--json]

Times the communicator's collectives between the ranks mpirun started, over message sizes from 8 B to
--max-bytes in steps of 8x, through the same promise/blocking calls training uses, and fits
t = alpha + beta·bytes per operation. Rank 0 prints. Transports: mpirun's default (shared memory on
one host), or --mca btl self,tcp for TCP. As root add --allow-run-as-root.

options:
  --ops LIST       comma-separated of ${COMM_OPS.join(', ')} (default all)
  --max-bytes N    largest message (default 67108864)
  --repeat N       timed samples per size (default 10)
  --json           print one JSON object
  -h, --help       this help`;

async function runComm(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      ops: { type: 'string' },
      'max-bytes': { type: 'string', default: String(64 << 20) },
      repeat: { type: 'string', default: '10' },
      json: { type: 'boolean', default: false },
    },
    COMM_HELP,
  );
  if (values === undefined) return;
  const ops = (values.ops ?? COMM_OPS.join(',')).split(',').map((o) => o.trim());
  for (const o of ops) {
    if (!(COMM_OPS as readonly string[]).includes(o)) {
      throw new Error(`bench comm: unknown op '${o}' (one of ${COMM_OPS.join(', ')})`);
    }
  }
  const comm = openCommunicator();
  if (comm.size < 2) {
    throw new Error('bench comm: needs at least 2 ranks: mpirun -np 2 npx glam bench comm (see --help)');
  }
  const r = await benchComm(comm, {
    ops: ops as CommOp[],
    sizes: defaultSizes(intOption('max-bytes', values['max-bytes'], 8)),
    repeat: intOption('repeat', values.repeat, 1),
  });
  if (comm.rank === 0) console.log(values.json ? JSON.stringify(r) : formatCommBench(r));
  await comm.close();
}

const PARALLEL_HELP = `usage: mpirun -np R glam bench parallel [--config NAME|FILE] [--parallel data|expert]
                                     [--batch N] [--seq-len N] [--steps N] [--warmup N]
                                     [--overlap on|off|both] [--json]

Training steps of a data- or expert-parallel run on synthetic batches: step time, tokens/s, and the
gradient all-reduce's busy time, the part of it the step waited for after backward (exposed), and
the fraction hidden behind backward compute. Rank 0 prints.

options:
  --config NAME|FILE   model (default small-moe)
  --parallel MODE      data (default) or expert
  --batch N            global batch in sequences (default 8), --seq-len N (default 128)
  --steps N            timed steps (default 10) after --warmup N (default 2)
  --overlap WHICH      buckets posted as backward completes each layer (on), after backward (off),
                       or both, one after the other (default both)
  --json               print JSON (one object per overlap setting)
  -h, --help           this help`;

async function runParallel(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      config: { type: 'string', default: 'small-moe' },
      parallel: { type: 'string', default: 'data' },
      batch: { type: 'string', default: '8' },
      'seq-len': { type: 'string', default: '128' },
      steps: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      overlap: { type: 'string', default: 'both' },
      json: { type: 'boolean', default: false },
    },
    PARALLEL_HELP,
  );
  if (values === undefined) return;
  const which = values.overlap;
  if (which !== 'on' && which !== 'off' && which !== 'both')
    throw new Error(`--overlap must be on, off or both, got '${which}'`);
  const comm = openCommunicator();
  shareCores();
  for (const overlap of which === 'both' ? [true, false] : [which === 'on']) {
    const r = await benchParallel(comm, {
      config: values.config,
      mode: parseParallelMode(values.parallel),
      batch: intOption('batch', values.batch, 1),
      seqLen: intOption('seq-len', values['seq-len'], 1),
      steps: intOption('steps', values.steps, 1),
      warmup: intOption('warmup', values.warmup, 0),
      overlap,
    });
    if (comm.rank === 0) console.log(values.json ? JSON.stringify(r) : formatParallelBench(r));
  }
  await comm.close();
}

const LAYERS_HELP = `usage: glam bench layers [--config NAME|FILE] [--experts N] [--vocab N] [--batch N]
                        [--seq-len N] [--rounds N] [--threads T] [--json]

Times forward + backward of each kind of layer (attention, dense FFN, MoE dropless top-2, output
projection with the loss) at a config's shapes and reports the training FLOP/s each achieves: the
--compute input of glam bench cluster.

options:
  --config NAME|FILE   shapes of the layers (default glam-0.1b-64e: d_model 768, d_ff 3072)
  --experts N          experts of the MoE layer (default 16; the config's count needs more memory)
  --vocab N            output vocabulary (default 32000)
  --batch N, --seq-len N   tokens per pass (default 8 x 256)
  --rounds N           timed passes per layer (default 3, after one untimed)
  --threads T          kernel threads (default: all cores)
  --json               print one JSON object
  -h, --help           this help`;

async function runLayers(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      config: { type: 'string', default: 'glam-0.1b-64e' },
      experts: { type: 'string', default: '16' },
      vocab: { type: 'string', default: '32000' },
      batch: { type: 'string', default: '8' },
      'seq-len': { type: 'string', default: '256' },
      rounds: { type: 'string', default: '3' },
      threads: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    LAYERS_HELP,
  );
  if (values === undefined) return;
  if (values.threads !== undefined) kernels().setThreads(intOption('threads', values.threads, 1, 1024));
  const c = resolveConfig(values.config);
  const r = benchLayers(
    {
      dModel: c.d_model,
      heads: c.n_heads,
      dHead: c.d_head,
      dFf: c.d_ff,
      experts: intOption('experts', values.experts, 2),
      dFfExpert: c.d_ff_expert,
      vocab: intOption('vocab', values.vocab, 2),
      batch: intOption('batch', values.batch, 1),
      seqLen: intOption('seq-len', values['seq-len'], 1),
    },
    intOption('rounds', values.rounds, 1),
  );
  console.log(values.json ? JSON.stringify(r) : formatLayerBench(r));
}

const CLUSTER_HELP = `usage: glam bench cluster --comm FILE --compute FILE [--transport tcp] [--hidden F]
                         [--configs LIST] [--hosts LIST] [--tokens N] [--seq-len N]
                         [--host-speedup X] [--host-memory GIB] [--svg OUT] [--json]

Projects step time, tokens/s and scaling efficiency of expert- plus data-parallel training on 8 to
512 hosts from measurements on this machine: per-link collective costs (--comm: the JSON of
bench/comm_transports.mjs --out, fitted on 2 ranks) and per-layer compute rates (--compute: the JSON of
glam bench layers --json). The model and its assumptions: docs/distributed.md.

options:
  --comm FILE         collective measurements (alpha-beta fits per transport)
  --transport NAME    which transport of --comm models the network (default tcp)
  --compute FILE      achieved training FLOP/s per layer kind
  --hidden F          fraction of all-reduce time hidden behind backward (default 0; measured by the
                      data-parallel overlap benchmark)
  --configs LIST      presets (default glam-0.1b-64e,glam-1.7b-64e,glam-8b-64e,glam-64b-64e)
  --hosts LIST        host counts (default 8,16,32,64,128,256,512)
  --tokens N          tokens per optimizer step over the cluster (default 1048576, GLaM's 1M)
  --seq-len N         context length of the attention FLOPs (default 1024)
  --host-speedup X    hosts compute X times faster than the measured rates (e.g. 32 for 64-core hosts
                      against this 2-core machine); the network stays as measured (default 1)
  --host-memory GIB   memory per host, to flag what does not fit (default 24)
  --svg OUT           write the plot (tokens/s and efficiency against hosts)
  --json              print the projection as JSON
  -h, --help          this help`;

async function runCluster(args: string[]): Promise<void> {
  const values = parseCommand(
    args,
    {
      comm: { type: 'string' },
      transport: { type: 'string', default: 'tcp' },
      compute: { type: 'string' },
      hidden: { type: 'string', default: '0' },
      configs: { type: 'string', default: 'glam-0.1b-64e,glam-1.7b-64e,glam-8b-64e,glam-64b-64e' },
      hosts: { type: 'string', default: '8,16,32,64,128,256,512' },
      tokens: { type: 'string', default: String(1 << 20) },
      'seq-len': { type: 'string', default: '1024' },
      'host-memory': { type: 'string', default: '24' },
      'host-speedup': { type: 'string', default: '1' },
      svg: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    CLUSTER_HELP,
  );
  if (values === undefined) return;
  const readJson = (flag: string, file: string | undefined): unknown => {
    if (file === undefined) throw new Error(`bench cluster: --${flag} FILE is required (see --help)`);
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as unknown;
    } catch (e) {
      throw new Error(`bench cluster: --${flag} ${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const links = linkCostsFromFile(readJson('comm', values.comm), values.transport);
  const speedup = numberOption('host-speedup', values['host-speedup']);
  if (!(speedup > 0)) throw new Error(`--host-speedup must be > 0, got ${values['host-speedup']}`);
  const measured = ratesFromFile(readJson('compute', values.compute));
  const rates = { ...measured };
  for (const k of Object.keys(rates) as (keyof typeof rates)[]) rates[k] *= speedup;
  const hidden = numberOption('hidden', values.hidden);
  if (!(hidden >= 0 && hidden <= 1)) throw new Error(`--hidden must be in [0, 1], got ${values.hidden}`);
  const hosts = values.hosts.split(',').map((h) => intOption('hosts', h.trim(), 1));
  const results: ConfigProjection[] = values.configs.split(',').map((name) => {
    const config = resolveConfig(name.trim());
    const inputs = {
      config,
      globalTokens: intOption('tokens', values.tokens, 1),
      seqLen: intOption('seq-len', values['seq-len'], 1),
      rates,
      ...links,
      hiddenFraction: hidden,
      activationBytes: 4,
      gradientBytes: 4,
      hostMemoryBytes: numberOption('host-memory', values['host-memory']) * 2 ** 30,
    };
    return { name: name.trim(), points: hosts.map((h) => projectCluster(inputs, h)) };
  });
  if (values.svg !== undefined) {
    const hosts = speedup === 1 ? 'hosts like this one' : `hosts ${speedup}x this one`;
    const title = `${hosts}, ${values.transport} links`;
    atomicWriteFileSync(values.svg, renderSvg(projectionPanels(results, title), 2));
  }
  console.log(values.json ? JSON.stringify(results) : formatProjection(results));
}

export const SUBCOMMANDS: Record<string, Subcommand> = {
  gemm: { doc: 'matrix product GFLOP/s (median and spread of repeated runs)', run: runGemm },
  peak: { doc: 'FMA throughput of the machine per code path and thread count', run: runPeak },
  moe: { doc: 'MoE layer vs dense layer of equal activated FLOPs (forward+backward)', run: runMoe },
  train: { doc: 'training tokens/s, phase times and MFU on synthetic batches', run: runTrain },
  decode: { doc: 'decode tokens/s against the memory-bandwidth bound (KV-cache engine)', run: runDecode },
  comm: { doc: 'allreduce/alltoallv time and bandwidth between MPI ranks, alpha-beta fit', run: runComm },
  parallel: {
    doc: 'data/expert-parallel steps under mpirun: step time, all-reduce hidden behind backward',
    run: runParallel,
  },
  layers: { doc: 'forward+backward time and FLOP/s of each kind of layer', run: runLayers },
  cluster: {
    doc: 'projected tokens/s and scaling efficiency on 8-512 hosts from measurements',
    run: runCluster,
  },
};

function usage(): string {
  const lines = Object.entries(SUBCOMMANDS).map(([name, s]) => `  ${name.padEnd(8)} ${s.doc}`);
  return `usage: glam bench <subcommand> [options]\n\nsubcommands:\n${lines.join('\n')}\n\nglam bench <subcommand> --help for its options`;
}

export async function run(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(usage());
    if (sub === undefined) process.exitCode = 1;
    return;
  }
  const s = SUBCOMMANDS[sub];
  if (!Object.hasOwn(SUBCOMMANDS, sub) || s === undefined) {
    throw new Error(`bench: unknown subcommand '${sub}'\n\n${usage()}`);
  }
  await s.run(rest);
}
