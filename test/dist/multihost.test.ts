import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { mpirunNode, mpiSkipReason, REPO, rankLines } from './helpers.js';
import { NetnsCluster, netnsSkipReason } from './netns.js';

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
});
