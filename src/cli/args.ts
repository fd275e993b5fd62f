/** Small helpers shared by the `glam` commands' option parsing. */

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
