/** An error in user-supplied data (config, corpus file, prepared dataset), naming where it is. */
export class DataError extends Error {
  override name = 'DataError';
}

/** `file:line: message` when a line is known, else `file: message`. */
export function where(file: string, line?: number): string {
  return line === undefined ? file : `${file}:${line}`;
}
