import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { alignedFloat32, kernels, loadNative } from '../../src/backend/index.js';
import { native, nativeMissing } from './helpers.js';

const indexModule = fileURLToPath(new URL('../../src/backend/index.js', import.meta.url));

/** Runs a snippet in a fresh Node process with extra environment; returns stdout (throws on failure). */
function child(code: string, env: Record<string, string>): { stdout: string } {
  const script = `import * as backend from ${JSON.stringify(indexModule)};\n${code}`;
  const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, GLAM_BACKEND: '', GLAM_FORCE_PORTABLE: '', GLAM_ISA: '', ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { stdout };
}

describe('backend selection and storage', () => {
  test('the native addon builds and loads', () => {
    const load = loadNative();
    assert.ok(load.ok, load.ok ? '' : `addon at ${load.path} did not load: ${load.reason}`);
  });

  test('kernels() picks native; GLAM_BACKEND=reference forces the TypeScript kernels', {
    skip: nativeMissing,
  }, () => {
    assert.equal(kernels().name, process.env.GLAM_BACKEND === 'reference' ? 'reference' : 'native');
    const out = child(`console.log(backend.kernels().name + '|' + backend.kernels().describe());`, {
      GLAM_BACKEND: 'reference',
    });
    assert.match(out.stdout, /^reference\|reference TypeScript kernels/);
  });

  test('without the addon: the reference kernels run and one warning says why', () => {
    // A preload that makes loading any .node file fail, as a missing or broken build would.
    const dir = mkdtempSync(path.join(tmpdir(), 'glam-no-addon-'));
    try {
      const preload = path.join(dir, 'no-addon.cjs');
      writeFileSync(
        preload,
        "const M = require('node:module'); const load = M._load;\n" +
          "M._load = function (req, ...rest) { if (String(req).endsWith('.node')) throw new Error('simulated: no addon'); return load.call(this, req, ...rest); };\n",
      );
      const script =
        `import * as backend from ${JSON.stringify(indexModule)};\n` +
        `const k = backend.kernels(); backend.kernels(); backend.alignedFloat32(5);\n` +
        `const c = new Float32Array(1); const one = (x) => backend.mat(x, 1, 1); k.sgemm(1, one(new Float32Array([2])), one(new Float32Array([3])), 0, one(c));\n` +
        `console.log(k.name + ' ' + c[0]);`;
      const r = spawnSync(process.execPath, ['--require', preload, '--input-type=module', '-e', script], {
        env: { ...process.env, GLAM_BACKEND: '' },
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'reference 6');
      const warnings = r.stderr.split('\n').filter((l) => l.includes('warning'));
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(
        warnings[0]!,
        /native kernels unavailable \(simulated: no addon\); running the pure TypeScript/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('GLAM_BACKEND with an unknown value is an error', () => {
    assert.throws(
      () => child('backend.kernels();', { GLAM_BACKEND: 'cuda' }),
      /GLAM_BACKEND must be 'native' or 'reference'/,
    );
  });

  test('GLAM_ISA selects each path the CPU has in a fresh process, and it computes', {
    skip: nativeMissing,
  }, () => {
    const code = `
      const k = backend.kernels();
      const a = new Float32Array(35 * 19).map((_, i) => (i % 7) - 3);
      const b = new Float32Array(19 * 41).map((_, i) => (i % 5) - 2);
      const c = new Float32Array(35 * 41);
      const r = new Float32Array(35 * 41);
      const M = backend.mat;
      k.sgemm(1, M(a, 35, 19), M(b, 19, 41), 0, M(c, 35, 41));
      backend.referenceKernels.sgemm(1, M(a, 35, 19), M(b, 19, 41), 0, M(r, 35, 41));
      console.log(k.describe() + '|' + c.every((v, i) => v === r[i]));`;
    const names: Record<string, string> = { avx512: 'avx512', avx2: 'avx2\\+fma', portable: 'portable' };
    const isas = native!.info().isas;
    assert.ok(isas.includes('portable'));
    for (const isa of isas) {
      const out = child(code, { GLAM_ISA: isa, GLAM_THREADS: '2' });
      // Small integers: every product and sum is exact, so every path must agree exactly.
      assert.match(
        out.stdout.trim(),
        new RegExp(`^native ${names[isa]} \\(forced by GLAM_ISA=${isa}\\), 2 threads\\|true$`),
      );
    }
    const legacy = child(code, { GLAM_FORCE_PORTABLE: '1', GLAM_THREADS: '2' });
    assert.match(
      legacy.stdout.trim(),
      /^native portable \(forced by GLAM_FORCE_PORTABLE\), 2 threads\|true$/,
    );
    // The default is the fastest path the CPU has; a name it cannot run (or no name at all) keeps it.
    const def = child(`console.log(backend.kernels().describe());`, { GLAM_THREADS: '1' });
    assert.match(def.stdout, new RegExp(`^native ${names[isas[0]!]} \\(CPU .*\\), 1 thread\\n$`));
    const bad = child(`console.log(backend.kernels().describe());`, { GLAM_ISA: 'sse9', GLAM_THREADS: '1' });
    assert.match(
      bad.stdout,
      new RegExp(`^native ${names[isas[0]!]} \\(GLAM_ISA names no instruction set; default choice\\)`),
    );
  });

  test('setIsa switches paths in process and refuses what the CPU lacks', { skip: nativeMissing }, () => {
    const info = native!.info();
    try {
      for (const isa of info.isas) {
        assert.ok(native!.setIsa(isa));
        assert.equal(native!.info().isaKey, isa);
      }
      for (const isa of ['avx512', 'avx2'] as const) {
        if (!info.isas.includes(isa)) assert.equal(native!.setIsa(isa), false);
      }
      assert.throws(() => native!.addon.selectIsa(3 as unknown as string), /selectIsa: isa must be a string/);
      assert.equal(native!.addon.selectIsa('sse9'), false);
    } finally {
      native!.setIsa(undefined);
    }
    assert.equal(native!.info().isaKey, info.isas[0]);
  });

  test('alignedFloat32 starts on a 64-byte boundary and is zeroed', {
    skip: process.env.GLAM_BACKEND === 'reference' ? 'GLAM_BACKEND=reference: plain storage' : nativeMissing,
  }, () => {
    for (const n of [0, 1, 3, 17, 1000, 65_537]) {
      const a = alignedFloat32(n);
      assert.equal(a.length, n);
      assert.equal((native!.addon.addressMod64(a.buffer as ArrayBuffer) + a.byteOffset) % 64, 0, `n=${n}`);
      assert.ok(a.every((v) => v === 0));
    }
    // The check is not vacuous: a view one float further is misaligned.
    const a = alignedFloat32(8);
    const shifted = new Float32Array(a.buffer, a.byteOffset + 4, 4);
    assert.notEqual((native!.addon.addressMod64(a.buffer as ArrayBuffer) + shifted.byteOffset) % 64, 0);
  });

  test('thread count: settable, reported, bad values rejected', { skip: nativeMissing }, () => {
    const before = native!.getThreads();
    try {
      native!.setThreads(1);
      assert.equal(native!.getThreads(), 1);
      assert.match(native!.describe(), /, 1 thread$/);
      native!.setThreads(3);
      assert.equal(native!.getThreads(), 3);
      assert.throws(() => native!.setThreads(0), /setThreads: n must be a positive integer/);
      assert.throws(() => native!.setThreads(1.5), /setThreads/);
    } finally {
      native!.setThreads(before);
    }
    const env = child(`console.log(backend.kernels().getThreads());`, { GLAM_THREADS: '3' });
    assert.equal(env.stdout.trim(), '3');
  });

  test('readBandwidthOf reads the bytes of the views it is given, of any element type', {
    skip: nativeMissing,
  }, () => {
    const f32 = new Float32Array(1 << 16);
    const u16 = new Uint16Array(1001);
    const slice = new Float64Array(64).subarray(3, 10);
    const r = native!.readBandwidthOf(2, [f32, u16, slice, new Uint8Array(0)], 3);
    assert.equal(r.bytes, 4 * (1 << 16) + 2 * 1001 + 8 * 7);
    assert.equal(r.trials, 3);
    assert.ok(r.gbps > 0 && r.median > 0 && r.median <= r.gbps && Number.isFinite(r.gbps), `${r.gbps}`);
    assert.equal(native!.readBandwidth(1, 8, 0.01).bytes, 8 << 20);
    const bad: [unknown, unknown, unknown, RegExp][] = [
      [2, f32, 1, /readBandwidthOf: views must be an array of typed arrays/],
      [2, [f32, {}], 1, /readBandwidthOf: views\[1\] must be a typed array/],
      [2, [], 1, /readBandwidthOf: views hold no bytes/],
      [2, [f32], 0, /readBandwidthOf: trials must be in \[1, 1000\]/],
      [0, [f32], 1, /readBandwidthOf: threads must be in \[1, 1024\]/],
    ];
    for (const [threads, views, trials, message] of bad) {
      assert.throws(
        () => native!.addon.readBandwidthOf(threads as number, views as ArrayBufferView[], trials as number),
        message,
      );
    }
  });

  test('peak measures FMA throughput per thread count', { skip: nativeMissing }, () => {
    const r = native!.peak(1, 0.05);
    assert.equal(r.threads, 1);
    assert.ok(r.gflops > 0.5 && Number.isFinite(r.gflops), `peak ${r.gflops}`);
    assert.equal(r.isa, native!.info().isa);
  });
});
