/** `glam generate`: sample text from a checkpoint (or the latest checkpoint of a run directory), streamed. */
import { Tokenizer } from '../data/tokenizer.js';
import { InferenceEngine } from '../infer/engine.js';
import { validateSampling } from '../infer/sample.js';
import { TOKENIZER_FILE } from '../model/checkpoint.js';
import { loadModelCheckpointStored } from '../train/checkpoints.js';
import { intOption, numberOption, parseCommand, requireOption } from './args.js';

const HELP = `usage: glam generate --model DIR --prompt TEXT [--max-tokens N] [--temperature T]
                     [--top-k K] [--top-p P] [--seed N] [--beam W] [--stop TEXT]...

Continues TEXT with the model in DIR: a checkpoint directory, or a training run
directory (its latest checkpoint is used), printing tokens as they come. Runs on
the KV-cache inference engine. Temperature 0 is greedy decoding.

options:
  --max-tokens N    tokens to generate (default 64)
  --temperature T   sampling temperature (default 0.8; 0 = greedy)
  --top-k K         sample from the K most likely tokens (default 0 = all)
  --top-p P         nucleus sampling mass (default 0.95)
  --seed N          sampling seed (default 0)
  --beam W          beam search of width W (W >= 2; sampling options do not apply)
  --stop TEXT       stop at TEXT (not printed); may be given several times`;

export async function run(args: string[]): Promise<void> {
  const v = parseCommand(
    args,
    {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string', default: '64' },
      temperature: { type: 'string', default: '0.8' },
      'top-k': { type: 'string', default: '0' },
      'top-p': { type: 'string', default: '0.95' },
      seed: { type: 'string', default: '0' },
      beam: { type: 'string', default: '1' },
      stop: { type: 'string', multiple: true },
    },
    HELP,
  );
  if (v === undefined) return;
  const prompt = requireOption('generate', 'prompt', v.prompt);
  // Every option is checked before anything is printed: an error never follows the prompt on stdout.
  const maxTokens = intOption('max-tokens', v['max-tokens'], 0);
  const temperature = numberOption('temperature', v.temperature);
  const topK = intOption('top-k', v['top-k'], 0);
  const topP = numberOption('top-p', v['top-p']);
  const seed = intOption('seed', v.seed, 0);
  const beam = intOption('beam', v.beam, 1, 64);
  validateSampling({ temperature, topK, topP });
  // As stored: a bf16 checkpoint generates with bf16 products (half the bytes per token).
  const ck = loadModelCheckpointStored(requireOption('generate', 'model', v.model));
  const dir = ck.dir;
  if (ck.tokenizerPath === undefined)
    throw new Error(`${dir}: no ${TOKENIZER_FILE}; cannot turn text into tokens`);
  const tokenizer = Tokenizer.load(ck.tokenizerPath);
  if (tokenizer.vocabSize !== ck.config.vocab_size) {
    throw new Error(`${dir}: tokenizer has ${tokenizer.vocabSize} ids, the model ${ck.config.vocab_size}`);
  }
  const ids = tokenizer.encode(prompt);
  if (ids.length === 0) throw new Error('generate: the prompt encodes to no tokens');
  const room = ck.config.max_seq_len - ids.length;
  if (room < 0) {
    throw new Error(
      `generate: the prompt is ${ids.length} tokens, over the model's context of ${ck.config.max_seq_len}`,
    );
  }
  const engine = new InferenceEngine(ck.config, ck.weights, {
    codec: tokenizer,
    kvCacheBytes: kvBytesFor(
      ck.config.n_layers,
      ck.config.n_heads * ck.config.d_head,
      ck.config.max_seq_len,
      beam,
    ),
  });
  process.stdout.write(prompt);
  const handle = engine.submit(
    {
      prompt: ids,
      maxTokens: Math.min(maxTokens, room),
      temperature,
      topK,
      topP,
      seed,
      beamWidth: beam,
      stopTokens: [tokenizer.eosId],
      stop: v.stop ?? [],
    },
    (e) => {
      if (e.type === 'token' || e.type === 'finish') process.stdout.write(e.text);
    },
  );
  while (engine.pending > 0) {
    engine.step();
    // Let stdout drain between steps, so tokens show as they come.
    await new Promise((r) => setImmediate(r));
  }
  const result = await handle.done;
  if (beam >= 2) process.stdout.write(result.choices[0]?.text ?? '');
  process.stdout.write('\n');
}

/** Enough cache for `sequences` sequences of the model's full context. */
function kvBytesFor(layers: number, width: number, maxLen: number, sequences: number): number {
  return 2 * layers * width * 4 * (maxLen + 32) * (sequences + 1);
}
