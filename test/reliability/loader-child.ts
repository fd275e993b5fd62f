/**
 * Runs one loader on one path in a child process and prints the outcome as JSON, so the
 * tests can bound the time (a loader that blocks on a FIFO or reads /dev/zero without end
 * is killed by the parent's timeout instead of hanging the test run).
 *
 * usage: node loader-child.js LOADER PATH [LOADER PATH ...]   (one JSON line per pair, in order)
 */

import { loadDataConfig } from '../../src/data/config.js';
import { openDataset } from '../../src/data/dataset.js';
import { Tokenizer } from '../../src/data/tokenizer.js';
import { readTokenRows } from '../../src/infer/score.js';
import { loadCheckpoint } from '../../src/model/checkpoint.js';
import { getPreset, resolveConfig } from '../../src/model/presets.js';
import { readSafetensors } from '../../src/model/safetensors.js';
import { loadTrainingCheckpoint } from '../../src/train/checkpoints.js';

export const LOADERS: Record<string, (p: string) => unknown> = {
  config: (p) => resolveConfig(p),
  checkpoint: (p) => loadCheckpoint(p),
  training: (p) => loadTrainingCheckpoint(p),
  safetensors: (p) => readSafetensors(p),
  tokenizer: (p) => Tokenizer.load(p),
  tokens: (p) => readTokenRows(p, getPreset('tiny')),
  dataset: (p) => openDataset(p).close(),
  'data-config': (p) => loadDataConfig(p),
};

const args = process.argv.slice(2);
for (let i = 0; i + 1 < args.length; i += 2) {
  const [name, file] = [args[i]!, args[i + 1]!];
  const t0 = performance.now();
  try {
    LOADERS[name]!(file);
    console.log(JSON.stringify({ loader: name, file, ok: true, ms: performance.now() - t0 }));
  } catch (err) {
    const e = err as Error;
    const message = e instanceof Error ? e.message : String(e);
    console.log(
      JSON.stringify({
        loader: name,
        file,
        ok: false,
        isError: e instanceof Error,
        message,
        ms: performance.now() - t0,
      }),
    );
  }
}
