/** Shared pieces of the server tests: a server on the committed tiny checkpoint, raw HTTP, SSE parsing. */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveCheckpoint } from '../../src/model/checkpoint.js';
import { parseConfig } from '../../src/model/config.js';
import { initParams } from '../../src/model/init.js';
import { GlamServer, type ServeOptions } from '../../src/serve/server.js';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
/** The tiny MoE checkpoint with its tokenizer (vocab 512, context 64) committed for the eval tests. */
export const TINY = path.join(repoRoot, 'test/fixtures/eval/tiny-moe');

export async function startServer(opts: Partial<ServeOptions> = {}): Promise<GlamServer> {
  const server = await GlamServer.start({ modelDir: TINY, modelName: 'tiny-moe', port: 0, ...opts });
  await server.ready();
  return server;
}

/**
 * A checkpoint slow enough to still be generating when a test acts on it (context 512, a few million
 * parameters), with the tiny checkpoint's tokenizer; written once per process into a temp directory
 * that is removed when the process exits (each test file is a process: ~40 MB would pile up per run).
 */
let slowDir: string | undefined;
export function slowCheckpoint(): string {
  if (slowDir !== undefined) return slowDir;
  const cfg = parseConfig({
    vocab_size: 512,
    d_model: 256,
    n_layers: 4,
    n_heads: 4,
    d_head: 64,
    d_ff: 1024,
    n_experts: 8,
    max_seq_len: 512,
  });
  const parent = mkdtempSync(path.join(tmpdir(), 'glam-serve-test-'));
  process.on('exit', () => rmSync(parent, { recursive: true, force: true }));
  const dir = path.join(parent, 'slow');
  saveCheckpoint(dir, cfg, initParams(cfg, 3));
  copyFileSync(path.join(TINY, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  slowDir = dir;
  return dir;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with full control over what is sent (for malformed requests). */
export function raw(
  url: string,
  method: string,
  urlPath: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const u = new URL(urlPath, url);
    const req = request(
      u,
      {
        method,
        headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

export async function postJson(
  url: string,
  urlPath: string,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const r = await raw(url, 'POST', urlPath, JSON.stringify(body), headers);
  return { status: r.status, headers: r.headers, json: JSON.parse(r.body) as Record<string, unknown> };
}

/** The data payloads of a server-sent event stream ([DONE] included as the string). */
export function sseData(text: string): (Record<string, unknown> | '[DONE]')[] {
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => {
      const d = e.slice(6);
      return d === '[DONE]' ? '[DONE]' : (JSON.parse(d) as Record<string, unknown>);
    });
}

/** `glam serve` as a child process; resolves with it and its URL once it listens. */
export function spawnServe(
  args: string[],
  cwd?: string,
): Promise<{ child: ReturnType<typeof spawn>; url: string; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'bin/glam.js'), 'serve', '--port', '0', ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(cwd === undefined ? {} : { cwd }),
      },
    );
    let err = '';
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ child, url: m[1]!, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`glam serve exited with ${code}: ${err}`)));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A metric's value from a Prometheus text page (first series matching name and labels). */
export function metric(text: string, name: string, labels = ''): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const [key, value] = line.split(' ');
    if (key === name || (labels !== '' && key === `${name}{${labels}}`)) return Number(value);
  }
  return Number.NaN;
}
