/** Launching test workers under mpirun; the tests skip (saying why) where MPI is not installed. */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MPI_ADDON_PATH } from '../../src/dist/mpi.js';
import { mpirunArgs } from '../../src/dist/run.js';

export const REPO = fileURLToPath(new URL('../../..', import.meta.url));

function mpirunPath(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * Why the MPI tests cannot run here, or null when they can. mpi.h present but no addon is a build
 * failure, not a reason to skip: that throws.
 */
export function mpiSkipReason(): string | null {
  const probe = execFileSync(process.execPath, [path.join(REPO, 'native/mpi/flags.cjs'), 'have'], {
    encoding: 'utf8',
  });
  if (probe !== '1') return 'MPI not installed (no mpi.h): apt-get install openmpi-bin libopenmpi-dev';
  if (mpirunPath() === null) return 'mpirun not found: apt-get install openmpi-bin';
  if (!existsSync(MPI_ADDON_PATH)) {
    throw new Error(`mpi.h is installed but ${MPI_ADDON_PATH} was not built: run npm run install`);
  }
  return null;
}

/**
 * Open MPI's TCP on the loopback interface only: other tests add and remove network interfaces
 * (the multi-host test's bridge) while these run, and a rank that picked one up fails to connect.
 */
export const LOOPBACK_ENV = { OMPI_MCA_btl_tcp_if_include: 'lo', OMPI_MCA_oob_tcp_if_include: 'lo' };

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command, killing it (and failing the run) after timeoutMs. */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? REPO,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${opts.timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs `node script args` on np ranks; throws with the output when mpirun fails. */
export async function mpirunNode(
  np: number,
  script: string,
  args: string[] = [],
  opts: { mpiArgs?: string[]; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const r = await runCommand('mpirun', [...mpirunArgs(np, opts.mpiArgs), process.execPath, script, ...args], {
    timeoutMs: opts.timeoutMs ?? 60_000,
    env: {
      GLAM_THREADS: '1',
      // Runs that name their interfaces (the multi-host test) keep them.
      ...(opts.mpiArgs?.some((a) => a.endsWith('_if_include')) ? {} : LOOPBACK_ENV),
      ...process.env,
      ...opts.env,
    },
  });
  if (r.code !== 0) {
    throw new Error(`mpirun -np ${np} ${script} failed (${r.code ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

/** The JSON lines a worker printed with a `"rank"` field, indexed by rank. */
export function rankLines<T extends { rank: number }>(stdout: string): T[] {
  const out: T[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const v = JSON.parse(line) as T;
    out[v.rank] = v;
  }
  return out;
}
