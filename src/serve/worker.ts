/**
 * The engine's thread: loads the checkpoint, runs the inference engine's step loop, and talks to the
 * HTTP thread by messages, so the HTTP thread (health, metrics, new requests, disconnects) never
 * waits on compute. Between steps it takes in new requests and cancellations.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Tokenizer } from '../data/tokenizer.js';
import {
  CapacityError,
  type GenerationHandle,
  InferenceEngine,
  InvalidRequestError,
} from '../infer/engine.js';
import { loadModelCheckpointStored } from '../train/checkpoints.js';
import type { FromWorker, ToWorker, WorkerOptions } from './messages.js';

/** Seconds between stats messages while the engine is busy. */
const STATS_INTERVAL_MS = 200;

function main(): void {
  const port = parentPort;
  if (port === null) throw new Error('serve worker: must run as a worker thread');
  const post = (m: FromWorker) => port.postMessage(m);
  const opts = workerData as WorkerOptions;
  let engine: InferenceEngine;
  try {
    // As stored: a bf16 checkpoint's matrices stay bf16, so decoding reads half the bytes.
    const ck = loadModelCheckpointStored(opts.modelDir);
    if (ck.tokenizerPath === undefined)
      throw new Error(`${opts.modelDir}: the checkpoint has no tokenizer.json`);
    const tokenizer = Tokenizer.load(ck.tokenizerPath);
    engine = new InferenceEngine(ck.config, ck.weights, {
      kvCacheBytes: opts.kvCacheBytes,
      maxSequences: opts.maxSequences,
      maxStepTokens: Math.max(opts.maxStepTokens, opts.maxSequences),
      codec: tokenizer,
    });
    post({
      type: 'ready',
      info: {
        maxSeqLen: ck.config.max_seq_len,
        vocabSize: ck.config.vocab_size,
        moeLayers: engine.model.moeLayers,
        experts: ck.config.n_experts,
        parameters: [...ck.weights.values()].reduce((a, t) => a + t.data.length, 0),
        kvCacheBytes: engine.pool.usage().bytesTotal,
      },
    });
  } catch (err) {
    post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    return;
  }

  const handles = new Map<number, GenerationHandle>();
  let stopping = false;
  let wake: (() => void) | undefined;
  let lastStats = 0;

  const postStats = () => {
    lastStats = Date.now();
    post({
      type: 'stats',
      stats: engine.stats(),
      experts: engine.model.counters.map((c) => ({
        layer: c.layer,
        load: Array.from(c.load),
        dropped: c.dropped,
        tokens: c.tokens,
      })),
    });
  };

  port.on('message', (m: ToWorker) => {
    if (m.type === 'submit') {
      try {
        const h = engine.submit(m.request, (event) => {
          post({ type: 'event', id: m.id, event });
          if (event.type === 'end') handles.delete(m.id);
        });
        handles.set(m.id, h);
      } catch (err) {
        const e = err as Error;
        const param = err instanceof InvalidRequestError ? err.param : null;
        const name = err instanceof InvalidRequestError || err instanceof CapacityError ? e.name : 'Error';
        post({ type: 'rejected', id: m.id, name, message: e.message, param });
      }
    } else if (m.type === 'cancel') {
      handles.get(m.id)?.cancel();
    } else if (m.type === 'stop') {
      stopping = true;
    }
    wake?.();
  });

  const loop = async () => {
    postStats();
    for (;;) {
      if (engine.pending > 0) {
        engine.step();
        if (Date.now() - lastStats >= STATS_INTERVAL_MS || engine.pending === 0) postStats();
        // Yield to the message queue so requests and cancellations arrive between steps.
        await new Promise((r) => setImmediate(r));
      } else {
        if (stopping) break;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
    }
    postStats();
    port.close();
  };
  void loop();
}

main();
