import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  linkCostsFromTwoRanks,
  type ProjectionInputs,
  projectCluster,
  trainFlopsPerToken,
} from '../../src/dist/projection.js';
import { accounting } from '../../src/model/accounting.js';
import { getPreset } from '../../src/model/presets.js';

const close = (a: number, b: number, rel = 1e-12): void =>
  assert.ok(Math.abs(a - b) <= rel * Math.abs(b), `${a} vs ${b}`);

function inputs(over: Partial<ProjectionInputs> = {}): ProjectionInputs {
  return {
    config: getPreset('tiny-moe'),
    globalTokens: 4096,
    seqLen: 64,
    rates: { attention: 1e9, ffn: 1e9, moe: 1e9, output: 1e9 },
    alltoall: { alpha: 1e-5, beta: 1e-9 },
    allreduce: { alpha: 2e-5, beta: 2e-9 },
    hiddenFraction: 0.5,
    activationBytes: 4,
    gradientBytes: 4,
    hostMemoryBytes: 2 ** 30,
    ...over,
  };
}

describe('cluster projection', () => {
  it('splits the training FLOPs of glam info by layer kind', () => {
    for (const name of ['tiny-moe', 'small-moe', 'glam-0.1b-64e', 'glam-64b-64e', 'glam-8b']) {
      const cfg = getPreset(name);
      const parts = trainFlopsPerToken(cfg, cfg.max_seq_len);
      const sum = parts.attention + parts.ffn + parts.moe + parts.output;
      close(sum, accounting(cfg).train_flops_per_token);
    }
  });

  it('matches a hand computation for tiny-moe on 4 hosts (experts split 2 per host)', () => {
    const p = projectCluster(inputs(), 4);
    // 838,656 training FLOPs per token (attention 294,912, MoE 199,680, FFN 147,456, output 196,608) x 1024 tokens.
    close(p.computeS, 0.858783744);
    // One MoE layer x 4 all-to-alls; each 3 alpha + 3/4 of 1024 tokens x 2 choices x 64 floats.
    close(p.alltoallS, 4 * (3e-5 + 0.75 * 524288 * 1e-9));
    // Ring all-reduce of the 91,200 dense parameters over 4 hosts; experts are not replicated.
    close(p.allreduceS, 6 * 2e-5 + 1.5 * 91200 * 4 * 2e-9);
    close(p.exposedAllreduceS, 0.5 * p.allreduceS);
    close(p.stepS, p.computeS + p.alltoallS + p.exposedAllreduceS);
    close(p.tokensPerS, 4096 / p.stepS);
  });

  it('replicates experts past E hosts and all-reduces them over their replicas', () => {
    const p = projectCluster(inputs(), 16);
    close(p.computeS, 0.214695936);
    // All-to-all within groups of E = 8 hosts.
    close(p.alltoallS, 4 * (7e-5 + (7 / 8) * 131072 * 1e-9));
    // Dense over 16 hosts, plus each host's 16,384 expert parameters over its 2 replicas.
    close(p.allreduceS, 30 * 2e-5 + (30 / 16) * 364800 * 2e-9 + (2 * 2e-5 + 65536 * 2e-9));
  });

  it('scales linearly with free communication, and never hides more than the backward pass', () => {
    const free = inputs({ alltoall: { alpha: 0, beta: 0 }, allreduce: { alpha: 0, beta: 0 } });
    const a = projectCluster(free, 8);
    const b = projectCluster(free, 64);
    assert.equal(a.efficiency, 1);
    close(b.tokensPerS, 8 * a.tokensPerS);
    // A huge all-reduce: hiding is capped at the backward's 2/3 of compute.
    const slow = projectCluster(inputs({ allreduce: { alpha: 1, beta: 0 }, hiddenFraction: 1 }), 4);
    close(slow.exposedAllreduceS, slow.allreduceS - (2 / 3) * slow.computeS);
  });

  it('turns 2-rank fits into link costs that reproduce them on 2 hosts', () => {
    const links = linkCostsFromTwoRanks({ alpha: 3e-5, beta: 7e-10 }, { alpha: 4e-5, beta: 3e-10 });
    for (const bytes of [0, 1e3, 1e7]) {
      // Ring all-reduce on 2: 2 alpha + bytes beta; pairwise all-to-all on 2: alpha + bytes/2 beta.
      close(2 * links.allreduce.alpha + bytes * links.allreduce.beta, 3e-5 + 7e-10 * bytes);
      close(links.alltoall.alpha + (bytes / 2) * links.alltoall.beta, 4e-5 + 3e-10 * bytes);
    }
  });

  it('flags hosts whose share of the model does not fit', () => {
    const cfg = getPreset('glam-64b-64e');
    const p = projectCluster(inputs({ config: cfg, hostMemoryBytes: 24 * 2 ** 30, seqLen: 1024 }), 64);
    assert.equal(p.fits, false);
    assert.ok(p.memoryPerHostBytes > 8 * (accounting(cfg).expert_params / 64));
  });
});
