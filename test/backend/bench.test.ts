import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { referenceKernels } from '../../src/backend/reference.js';
import { benchGemm, benchPeak, parseTrans } from '../../src/bench/gemm.js';
import { median, quantile, summarize } from '../../src/bench/stats.js';
import { native, nativeMissing } from './helpers.js';

describe('bench helpers', () => {
  test('median, quantiles and spreads', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(quantile([1, 2, 3, 4, 5], 0.25), 2);
    assert.ok(Number.isNaN(median([])));
    const s = summarize([10, 12, 11, 30, 9]);
    assert.equal(s.median, 11);
    assert.equal(s.min, 9);
    assert.equal(s.max, 30);
    assert.equal(s.q1, 10);
    assert.equal(s.q3, 12);
    assert.ok(Math.abs(s.iqrRel - 2 / 11) < 1e-12);
    assert.ok(Math.abs(s.rangeRel - 21 / 11) < 1e-12);
  });

  test('benchGemm reports GFLOP/s consistent with its timings', () => {
    const r = benchGemm(referenceKernels, { m: 8, n: 9, k: 10, trans: 'NT', repeat: 3, warmupSeconds: 0 });
    assert.equal(r.op, 'sgemm');
    assert.equal(r.trans, 'NT');
    assert.equal(r.repeat, 3);
    assert.equal(r.threads, 1);
    assert.ok(r.ms_min <= r.ms_median && r.ms_median <= r.ms_max);
    assert.ok(Math.abs(r.gflops - (2 * 8 * 9 * 10) / (r.ms_median * 1e6)) < 1e-9 * r.gflops);
    const h = benchGemm(referenceKernels, {
      m: 3,
      n: 5,
      k: 7,
      trans: 'TT',
      dtype: 'bf16',
      repeat: 3,
      warmupSeconds: 0,
    });
    assert.equal(h.op, 'gemmBf16');
    assert.equal(h.dtype, 'bf16');
    // B is k x n bf16: 2 bytes per element read per call.
    assert.ok(Math.abs(h.b_gbytes_per_s - (7 * 5 * 2) / (h.ms_median * 1e6)) < 1e-9 * h.b_gbytes_per_s);
    assert.ok(Math.abs(r.b_gbytes_per_s - (10 * 9 * 4) / (r.ms_median * 1e6)) < 1e-9 * r.b_gbytes_per_s);
    // One thread computes, so the process's CPU time per call is not far above the wall time (null: too
    // short to tell). The CPU clock counts every thread of the process, V8's compiler threads included:
    // a warm-up lets them finish, and the median of nine samples outvotes a sample they still touch.
    const big = benchGemm(referenceKernels, { m: 64, n: 64, k: 64, repeat: 9, warmupSeconds: 0.05 });
    if (big.gflops_cpu !== null) assert.ok(big.gflops_cpu > 0 && big.gflops_cpu >= 0.5 * big.gflops);
    assert.throws(() => benchGemm(referenceKernels, { m: 0, n: 1, k: 1 }), /m must be a positive integer/);
    assert.throws(() => parseTrans('XN'), /--trans must be one of NN, NT, TN, TT/);
  });

  test('benchPeak gives a positive peak per thread count', { skip: nativeMissing }, () => {
    const r = benchPeak(native!, [1], 0.05);
    assert.equal(r.results.length, 1);
    const row = r.results[0]!;
    assert.equal(row.threads, 1);
    assert.equal(row.isa, native!.info().isa);
    assert.ok(row.gflops >= row.gflops_median && row.gflops_median > 0);
    assert.ok(row.trials >= 3);
  });

  test('benchPeak measures each path asked for and restores the path in use', { skip: nativeMissing }, () => {
    const info = native!.info();
    const r = benchPeak(native!, [1], 0.03, info.isas);
    assert.deepEqual(
      r.results.map((row) => row.isa),
      info.isas.map((isa) => ({ avx512: 'avx512', avx2: 'avx2+fma', portable: 'portable' })[isa]),
    );
    assert.equal(native!.info().isaKey, info.isaKey);
    assert.equal(r.isa, info.isa);
  });
});

describe('peak and MFU', () => {
  test('MFU is refused, saying why, when the achieved rate exceeds the measured peak', async () => {
    const { mfuOf } = await import('../../src/bench/train.js');
    assert.deepEqual(mfuOf(50, 200), { mfu: 0.25 });
    assert.deepEqual(mfuOf(50, null), { mfu: null });
    const over = mfuOf(150, 115);
    assert.equal(over.mfu, null);
    assert.match(over.mfuRefused!, /achieved 150.0 GFLOP\/s exceeds the measured peak 115.0/);
  });

  test('bench train reports the rate on CPU time beside the wall-clock rate', async () => {
    const { benchTrain, formatTrainBench } = await import('../../src/bench/train.js');
    const r = benchTrain({
      config: 'tiny',
      batch: 1,
      seqLen: 16,
      steps: 2,
      warmup: 0,
      threads: 1,
      peakGflops: 1e6,
    });
    assert.ok(r.onCpuGflops !== null && r.onCpuGflops > 0);
    assert.ok(Math.abs(r.onCpuMfu! - r.onCpuGflops / 1e6) < 1e-12);
    assert.match(formatTrainBench(r), /on-CPU rate [0-9.]+ GFLOP\/s per core of CPU time/);
  });

  test('the peak never runs more threads than cores (time-sliced threads would each count a core)', {
    skip: nativeMissing,
  }, () => {
    const cores = native!.info().cores;
    const before = native!.getThreads();
    try {
      native!.setThreads(cores + 2);
      const r = native!.peak(cores + 2, 0.05);
      assert.equal(r.threads, cores);
      assert.ok(r.gflops > 0 && r.median > 0);
    } finally {
      native!.setThreads(before);
    }
  });
});
