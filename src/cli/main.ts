/**
 * `glam` command dispatcher. Each command lives in its own file `src/cli/<name>.ts`
 * exporting `run(args: string[]): Promise<void>`; this file only routes and reports errors.
 */
import { joinNegativeValues } from './args.js';

const COMMANDS: Record<string, string> = {
  info: 'parameter, FLOP and memory accounting of a config',
  init: 'write a freshly initialised checkpoint',
  prepare: 'build the training data (filter, mixture, tokenizer, shards)',
  train: 'train a model',
  score: 'score token rows with a checkpoint (loss parts)',
  convert: 'copy a checkpoint with its weights in bf16 (inference) or f32',
  generate: 'sample text from a checkpoint',
  eval: "GLaM's evaluation protocol on its 29 tasks",
  serve: 'OpenAI-compatible completions server with a routing playground',
  plot: 'plot training curves of a run to SVG',
  sweep: "research sweeps: GLaM's claims at CPU scale (MoE vs dense, experts, capacity, filter)",
  bench: 'benchmarks (gemm, peak, moe, ...)',
};

interface CommandModule {
  run(args: string[]): Promise<void>;
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, doc]) => `  ${name.padEnd(10)} ${doc}`);
  return `usage: glam <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nglam <command> --help for a command's options`;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd === undefined ? 1 : 0;
  }
  if (!Object.hasOwn(COMMANDS, cmd)) {
    console.error(`glam: unknown command '${cmd}'\n\n${usage()}`);
    return 2;
  }
  const mod = (await import(`./${cmd}.js`)) as CommandModule;
  await mod.run(joinNegativeValues(rest));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    // A command may have set its own exit status (e.g. 130 after an interrupted run).
    process.exitCode ??= code;
  },
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    console.error(`glam: ${msg}`);
    if (process.env.GLAM_DEBUG && err instanceof Error) console.error(err.stack);
    process.exitCode = 1;
  },
);
