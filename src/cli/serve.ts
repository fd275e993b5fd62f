/** `glam serve`: the OpenAI-compatible completions server (src/serve/). */
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { GlamServer } from '../serve/server.js';
import { latestCheckpoint, resolveModelDir } from '../train/checkpoints.js';
import { intOption, numberOption, parseCommand } from './args.js';

const HELP = `usage: glam serve [--model DIR] [--host 127.0.0.1] [--port 8080] [--parallel N] [--max-queue N]
                  [--api-key KEY] [--timeout S] [--kv-cache-mib M] [--name NAME]

Serves a checkpoint (or a training run's latest checkpoint) over HTTP:
  POST /v1/completions   OpenAI/vLLM completions (streaming, echo + logprobs, return_token_ids)
  GET  /v1/models        the served model
  GET  /tokenizer_info, POST /tokenize, POST /detokenize   the tokenizer (lm-evaluation-harness)
  GET  /health           503 while loading, 200 when ready
  GET  /metrics          Prometheus metrics (requests, queue, latencies, KV cache, expert load)
  GET  /                 the playground: prompt, sampling controls, streamed tokens, per-token routing
Without --model it serves the newest checkpoint under runs/.

options:
  --parallel N       sequences generating at once (default 8)
  --max-queue N      requests waiting beyond those; more are answered 429 (default 64)
  --api-key KEY      require "Authorization: Bearer KEY" on /v1/* (health and metrics stay public)
  --timeout S        on SIGTERM/SIGINT, seconds in-flight requests may take to finish (default 30)
  --kv-cache-mib M   KV cache memory (default: room for --parallel sequences of the whole context)
  --name NAME        the model name responses carry (default: the run or checkpoint directory name)`;

/** The newest checkpoint of any run under `root` (by its directory's modification time). */
export function newestCheckpoint(root: string): string | undefined {
  let best: { dir: string; mtime: number } | undefined;
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return undefined;
  }
  for (const name of entries) {
    const run = path.join(root, name);
    let latest: string | undefined;
    try {
      if (!statSync(run).isDirectory()) continue;
      latest = latestCheckpoint(run);
    } catch {
      continue;
    }
    if (latest === undefined) continue;
    const mtime = statSync(latest).mtimeMs;
    if (best === undefined || mtime > best.mtime) best = { dir: latest, mtime };
  }
  return best?.dir;
}

/** A readable model name from a checkpoint path: the run's name for runs/NAME/checkpoints/step-N. */
function nameOf(dir: string): string {
  const parts = path.resolve(dir).split(path.sep);
  const i = parts.lastIndexOf('checkpoints');
  return i > 0 ? parts[i - 1]! : parts[parts.length - 1]!;
}

export async function run(args: string[]): Promise<void> {
  const v = parseCommand(
    args,
    {
      model: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      parallel: { type: 'string', default: '8' },
      'max-queue': { type: 'string', default: '64' },
      'api-key': { type: 'string' },
      timeout: { type: 'string', default: '30' },
      'kv-cache-mib': { type: 'string' },
      name: { type: 'string' },
    },
    HELP,
  );
  if (v === undefined) return;
  const port = intOption('port', v.port, 0, 65535);
  const parallel = intOption('parallel', v.parallel, 1, 512);
  const maxQueue = intOption('max-queue', v['max-queue'], 0);
  const drainSeconds = numberOption('timeout', v.timeout);
  if (drainSeconds < 0) throw new Error(`--timeout must be >= 0, got '${v.timeout}'`);
  const kvMib = v['kv-cache-mib'] === undefined ? undefined : intOption('kv-cache-mib', v['kv-cache-mib'], 1);
  if (v['api-key'] === '') throw new Error('--api-key must not be empty');
  let dir: string;
  if (v.model === undefined) {
    const newest = newestCheckpoint('runs');
    if (newest === undefined) {
      throw new Error(
        'serve: no --model given and no checkpoint under runs/; train one with `npx glam train` (it writes runs/small-moe), or pass --model DIR',
      );
    }
    dir = newest;
    console.error(`glam serve: serving ${dir} (the newest checkpoint under runs/)`);
  } else {
    dir = resolveModelDir(v.model);
  }
  const server = await GlamServer.start({
    modelDir: dir,
    modelName: v.name ?? nameOf(dir),
    host: v.host,
    port,
    parallel,
    maxQueue,
    drainSeconds,
    ...(kvMib === undefined ? {} : { kvCacheBytes: kvMib * 2 ** 20 }),
    ...(v['api-key'] === undefined ? {} : { apiKey: v['api-key'] }),
    log: (line) => console.error(line),
  });
  console.error(`glam serve: listening on ${server.url} (loading the model; /health answers 200 when ready)`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`glam serve: ${signal}: draining (up to ${drainSeconds} s)`);
    server.shutdown().then(
      () => {
        console.error('glam serve: stopped');
        process.exit(0);
      },
      (err: unknown) => {
        console.error(`glam serve: shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await server.ready().catch((err: unknown) => {
    console.error(`glam serve: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
    void server.shutdown();
  });
}
