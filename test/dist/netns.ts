/**
 * Several "hosts" on one machine for multi-host tests: each a network namespace (its own interfaces,
 * its own host name through a UTS namespace, its own Open MPI session directory) joined to the root
 * namespace by a veth pair on a bridge. mpirun (in the root namespace) starts its daemons in them
 * through an rsh agent script instead of ssh, so ranks on different hosts can only talk over TCP
 * across the bridge. Needs root and iproute2; `netnsSkipReason` says why not where that is missing.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why network namespaces cannot be used here (null when they can). */
export function netnsSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'multi-host test needs root for network namespaces (ip netns)';
  for (const cmd of ['ip', 'unshare', 'hostname']) {
    if (!has(cmd)) return `multi-host test needs '${cmd}' (apt-get install iproute2 util-linux)`;
  }
  const probe = `glamprobe${process.pid}`;
  try {
    ip(['netns', 'add', probe]);
    ip(['netns', 'del', probe]);
  } catch (e) {
    const msg =
      e instanceof Error && 'stderr' in e ? String((e as { stderr: Buffer }).stderr).trim() : String(e);
    return `this kernel or container does not allow network namespaces (ip netns add: ${msg})`;
  }
  return null;
}

export interface Host {
  name: string;
  address: string;
  /** The root-namespace end of the host's veth pair (its byte counters show the host's traffic). */
  veth: string;
}

export class NetnsCluster {
  readonly hosts: Host[] = [];
  readonly subnet: string;
  private readonly bridge: string;
  private readonly dir: string;
  private readonly agent: string;
  private readonly hostfile: string;

  /** Creates `count` hosts, one MPI slot each. Call close() (in a finally) to remove them. */
  constructor(count: number) {
    const pid = process.pid;
    // A subnet and names of this process only, so concurrent test runs do not collide.
    const prefix = `10.${100 + (pid % 100)}.${Math.floor(pid / 100) % 250}`;
    this.subnet = `${prefix}.0/24`;
    this.bridge = `gbr${pid}`;
    this.dir = mkdtempSync(path.join(tmpdir(), 'glam-netns-'));
    this.agent = path.join(this.dir, 'agent.sh');
    this.hostfile = path.join(this.dir, 'hosts');
    try {
      ip(['link', 'add', this.bridge, 'type', 'bridge']);
      ip(['addr', 'add', `${prefix}.1/24`, 'dev', this.bridge]);
      ip(['link', 'set', this.bridge, 'up']);
      for (let i = 0; i < count; i++) {
        const host = { name: `g${pid}h${i}`, address: `${prefix}.${11 + i}`, veth: `g${pid}v${i}` };
        this.hosts.push(host);
        ip(['netns', 'add', host.name]);
        ip(['link', 'add', host.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.name]);
        ip(['link', 'set', host.veth, 'master', this.bridge, 'up']);
        ip(['-n', host.name, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
        ip(['-n', host.name, 'link', 'set', 'eth0', 'up']);
        ip(['-n', host.name, 'link', 'set', 'lo', 'up']);
      }
    } catch (e) {
      this.close();
      throw e;
    }
    const cases = this.hosts.map((h) => `  ${h.address}) ns=${h.name};;`).join('\n');
    writeFileSync(
      this.agent,
      `#!/bin/sh
# mpirun's rsh agent: "agent.sh HOST COMMAND..." runs COMMAND on HOST, i.e. in its network namespace
# with its own host name and Open MPI session directory.
host=$1; shift
case "$host" in
${cases}
  *) echo "agent.sh: unknown host $host" >&2; exit 1;;
esac
mkdir -p ${this.dir}/tmp-$ns
export OMPI_MCA_orte_tmpdir_base=${this.dir}/tmp-$ns
exec ip netns exec $ns unshare --uts /bin/sh -c "hostname $ns; $*"
`,
    );
    chmodSync(this.agent, 0o755);
    writeFileSync(this.hostfile, this.hosts.map((h) => `${h.address} slots=1\n`).join(''));
  }

  /** mpirun options that place rank i on host i and keep every byte on the bridge's TCP. */
  mpiArgs(): string[] {
    return [
      '--hostfile',
      this.hostfile,
      '--mca',
      'plm_rsh_agent',
      this.agent,
      '--mca',
      'btl',
      'self,tcp',
      '--mca',
      'btl_tcp_if_include',
      this.subnet,
      '--mca',
      'oob_tcp_if_include',
      this.subnet,
    ];
  }

  /** Bytes the host has sent into the bridge so far. */
  sentBytes(host: Host): number {
    return Number(readFileSync(`/sys/class/net/${host.veth}/statistics/rx_bytes`, 'utf8'));
  }

  close(): void {
    for (const h of this.hosts) {
      try {
        ip(['netns', 'del', h.name]);
      } catch {
        // already gone
      }
    }
    try {
      ip(['link', 'del', this.bridge]);
    } catch {
      // already gone
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
