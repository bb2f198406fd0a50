// What a simulated host measures and reports: a boot chain of five components extended into the
// agent's PCR, an operational report of modest size, and the reference values that accept both.
// Must never depend on the machine the bench runs on: every value is synthetic and deterministic.
import { createHash } from 'node:crypto';
import { AGENT_MEASUREMENT_PCR, type MeasurementEvent } from '../../src/shared/attest-wire.ts';
import { expectedFromReport, type ReportedOperational } from '../../src/services/attest/domain/operational.ts';
import type { ReferencePolicyDocument } from '../../src/services/attest/domain/reference-policy.ts';

const digestOf = (text: string) => createHash('sha256').update(text).digest('hex');

/** A Debian host booted through shim and GRUB, and the agent's own program and configuration. */
export const BOOT_COMPONENTS = [
  '/boot/efi/EFI/debian/shimx64.efi',
  '/boot/vmlinuz-6.1.0-18-amd64',
  '/boot/initrd.img-6.1.0-18-amd64',
  '/usr/local/bin/trustplane',
  'agent:config',
] as const;

/** The component a tampered host reports changed. */
export const TAMPERED_COMPONENT = '/boot/vmlinuz-6.1.0-18-amd64';

/** The boot measurement: every component extended once, in order (as Attestor.measureBoot does). */
export function bootEvents(): MeasurementEvent[] {
  return BOOT_COMPONENTS.map((component) => ({ Pcr: AGENT_MEASUREMENT_PCR, Component: component, Digest: digestOf(`${component} release 1`) }));
}

/** What re-measurement appends when a component changed (the event list keeps the boot value before it). */
export function changedEvent(component: string): MeasurementEvent {
  return { Pcr: AGENT_MEASUREMENT_PCR, Component: component, Digest: digestOf(`${component} patched by someone`) };
}

const MODULES = ['ext4', 'mbcache', 'jbd2', 'xfs', 'libcrc32c', 'crc32c_generic', 'nf_tables', 'nfnetlink', 'nf_conntrack', 'nf_defrag_ipv6',
  'nf_defrag_ipv4', 'nft_ct', 'nft_chain_nat', 'nf_nat', 'bridge', 'stp', 'llc', 'overlay', 'br_netfilter', 'veth', 'tls', 'dm_mod', 'loop',
  'efi_pstore', 'configfs', 'ip_tables', 'x_tables', 'autofs4', 'sd_mod', 't10_pi', 'crc64_rocksoft', 'crc64', 'crc_t10dif', 'ahci', 'libahci',
  'libata', 'scsi_mod', 'scsi_common', 'virtio_net', 'net_failover', 'failover', 'virtio_blk', 'virtio_pci', 'virtio_ring', 'virtio', 'i2c_piix4',
  'evdev', 'button'];
const EXECUTABLES = ['/usr/sbin/sshd', '/usr/sbin/chronyd', '/usr/sbin/cron', '/usr/sbin/rsyslogd', '/usr/lib/systemd/systemd',
  '/usr/lib/systemd/systemd-journald', '/usr/lib/systemd/systemd-logind', '/usr/lib/systemd/systemd-udevd', '/usr/lib/systemd/systemd-networkd',
  '/usr/lib/systemd/systemd-resolved', '/usr/bin/dbus-daemon', '/usr/sbin/agetty', '/usr/bin/containerd', '/usr/bin/dockerd',
  '/usr/bin/containerd-shim-runc-v2', '/usr/sbin/nginx', '/usr/local/bin/node_exporter', '/usr/local/bin/trustplane', '/usr/bin/bash',
  '/usr/bin/sleep', '/usr/lib/postgresql/15/bin/postgres', '/usr/bin/python3.11', '/usr/sbin/unattended-upgrade', '/usr/bin/tini',
  '/usr/sbin/haproxy', '/usr/bin/redis-server', '/usr/sbin/irqbalance', '/usr/lib/polkit-1/polkitd', '/usr/sbin/ModemManager',
  '/usr/bin/gpg-agent', '/usr/lib/openssh/sftp-server', '/usr/bin/fluent-bit'];

/** An operational report of modest size: a handful of ports and users, 48 modules, 32 running executables. */
export function operationalReport(): ReportedOperational {
  return {
    ListeningPorts: ['tcp/22', 'tcp/80', 'tcp/443', 'tcp/9100', 'udp/123', 'udp/323'],
    Modules: [...MODULES],
    Executables: EXECUTABLES.map((path) => ({ Path: path, Sha256: digestOf(`${path} 1.0`) })),
    Users: ['root', 'daemon', 'sshd', 'systemd-network', '_chrony', 'nobody', 'www-data', 'postgres', 'trustplane'],
  };
}

/** Reference values accepting `events` (each component's last value) and exactly the report's operational sets. */
export function referencePolicy(events: readonly MeasurementEvent[], report: ReportedOperational): ReferencePolicyDocument {
  const current = new Map<string, string>();
  for (const event of events) current.set(event.Component, event.Digest);
  return { Components: Object.fromEntries([...current].map(([component, digest]) => [component, [digest]])),
    Operational: expectedFromReport(report) };
}
