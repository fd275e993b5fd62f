import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { mpirunNode, mpiSkipReason, REPO, rankLines } from './helpers.js';
import { NetnsCluster, netnsSkipReason } from './netns.js';
import {
  BIN,
  glam,
  maxRelativeDifference,
  moeConfig,
  preparedDataset,
  stepLines,
  trainArgs,
} from './train-helpers.js';

const COMM_WORKER = path.join(REPO, 'dist/test/dist/comm-worker.js');

describe('multi-host over TCP (ranks in separate network namespaces)', () => {
  const skip = mpiSkipReason() ?? netnsSkipReason();
  it('collectives cross the bridge between two hosts', {
    skip: skip ?? false,
    timeout: 120_000,
  }, async () => {
    const cluster = new NetnsCluster(2);
    try {
      const before = cluster.hosts.map((h) => cluster.sentBytes(h));
      const r = await mpirunNode(2, COMM_WORKER, [], { mpiArgs: cluster.mpiArgs() });
      const lines = rankLines<{ rank: number; host: string; addresses: string[]; f32: { head: number[] } }>(
        r.stdout,
      );
      for (let i = 0; i < 2; i++) {
        const h = cluster.hosts[i]!;
        assert.equal(lines[i]!.host, h.name, `rank ${i} runs on host ${h.name}`);
        assert.ok(lines[i]!.addresses.includes(h.address), `rank ${i} has ${h.address}`);
        assert.ok(!lines[i]!.addresses.includes(cluster.hosts[1 - i]!.address));
        assert.deepEqual(lines[i]!.f32.head, [1.75, 2.5, 3.25, 4, 4.75]);
        // The 12 MB allreduce: in a 2-rank reduction each rank sends at least half of it over the wire.
        const sent = cluster.sentBytes(h) - before[i]!;
        assert.ok(sent >= 6e6, `host ${h.name} sent ${sent} bytes over its veth`);
      }
    } finally {
      cluster.close();
    }
  });

  it('expert-parallel training on two hosts reproduces one process', {
    skip: skip ?? false,
    timeout: 180_000,
  }, async () => {
    const { root, data } = preparedDataset();
    const cluster = new NetnsCluster(2);
    try {
      const config = moeConfig(root, 'ep', { num_groups: 2, capacity_factor: 0 });
      const one = path.join(root, 'one');
      const two = path.join(root, 'two');
      await glam(trainArgs(config, data, one));
      const before = cluster.hosts.map((h) => cluster.sentBytes(h));
      await mpirunNode(2, BIN, [...trainArgs(config, data, two), '--parallel', 'expert'], {
        mpiArgs: cluster.mpiArgs(),
        timeoutMs: 150_000,
      });
      const a = stepLines(one);
      const b = stepLines(two);
      assert.equal(b.length, 20);
      assert.ok(maxRelativeDifference(a, b) <= 1e-5, `losses differ by ${maxRelativeDifference(a, b)}`);
      // Tokens, gradients and checkpoint gathers crossed the bridge from both hosts.
      cluster.hosts.forEach((h, i) => {
        const sent = cluster.sentBytes(h) - before[i]!;
        assert.ok(sent > 1e5, `host ${h.name} sent ${sent} bytes`);
      });
    } finally {
      cluster.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
