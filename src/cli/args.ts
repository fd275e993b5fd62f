/** Small helpers shared by the `glam` commands' option parsing. */
import { type ParseArgsConfig, parseArgs } from 'node:util';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

const HELP_OPTION = { help: { type: 'boolean', short: 'h', default: false } } as const;

type CommandConfig<O extends ParseArgsOptionsConfig> = {
  args: string[];
  options: O & typeof HELP_OPTION;
  strict: true;
  allowPositionals: false;
};

/**
 * A command's options (strict, no positionals, plus -h/--help), or undefined once `help` has been
 * printed because --help was given.
 */
export function parseCommand<const O extends ParseArgsOptionsConfig>(
  args: string[],
  options: O,
  help: string,
): ReturnType<typeof parseArgs<CommandConfig<O>>>['values'] | undefined {
  const config: CommandConfig<O> = {
    args,
    options: { ...options, ...HELP_OPTION },
    strict: true,
    allowPositionals: false,
  };
  const { values } = parseArgs(config);
  if ((values as { help?: boolean }).help) {
    console.log(help);
    return undefined;
  }
  return values;
}

/** An integer option value within [min, max]; `name` is the flag, for the message. */
export function intOption(
  name: string,
  value: string,
  min = Number.MIN_SAFE_INTEGER,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new Error(`--${name} must be an integer ${range}, got '${value}'`);
  }
  return v;
}

/** A finite number option value. */
export function numberOption(name: string, value: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v))
    throw new Error(`--${name} must be a number, got '${value}'`);
  return v;
}

/** The value of a required string option, or an error naming it and pointing at --help. */
export function requireOption(command: string, name: string, value: string | undefined): string {
  if (value === undefined || value === '')
    throw new Error(`${command}: --${name} is required (see glam ${command} --help)`);
  return value;
}

/**
 * `--max-steps -5` as `--max-steps=-5`: Node's parseArgs takes a value that starts with '-' for
 * an option of its own and gives up with "argument is ambiguous", so a negative number after a
 * flag would never reach the command's range check. Only numbers are joined; a flag that takes
 * no value then reports that instead.
 */
export function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    if (/^--[^=]+$/.test(a) && next !== undefined && /^-(\d|\.\d|Infinity$)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}
