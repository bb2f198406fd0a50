// The health watch's baseline: learning, figures judged against a running mean and spread, new list members flagged
// once, kernel changes and reboots, and a departing figure kept out of its own baseline.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assessHealth, readHealthSnapshot, readHostBaseline, type HealthSnapshot, type HostBaseline } from '../../src/shared/privop-health.ts';

const HOST = 'h-0a';
const at = new Date('2026-11-24T00:00:00Z');

function snapshot(overrides: { processes?: number; load?: number; uptime?: number; kernel?: string; sockets?: string[]; modules?: string[] } = {}): HealthSnapshot {
  const sockets = overrides.sockets ?? ['tcp/22'];
  const modules = overrides.modules ?? ['ext4'];
  return readHealthSnapshot({
    Kernel: { Release: overrides.kernel ?? '6.1.0-1', Version: '#1', Machine: 'x86_64' }, Hostname: 'h', UptimeSeconds: overrides.uptime ?? 1000,
    Mounts: [{ Device: '/dev/sda1', MountPoint: '/', Type: 'ext4', Options: 'rw' }], ListeningSockets: sockets, Users: ['root'], Modules: modules,
    Figures: { LoadAverage1m: overrides.load ?? 0.5, ProcessCount: overrides.processes ?? 200, ListeningSocketCount: sockets.length, ModuleCount: modules.length },
  }) as HealthSnapshot;
}

/** Feeds snapshots in order; returns the last baseline and every assessment's departures. */
function feed(snapshots: HealthSnapshot[], start?: HostBaseline) {
  let baseline = start;
  const all = snapshots.map((item, index) => {
    const assessed = assessHealth(baseline, HOST, { ...item, UptimeSeconds: item.UptimeSeconds + index }, at);
    baseline = assessed.baseline;
    return assessed.departures;
  });
  return { baseline: baseline as HostBaseline, departures: all };
}

describe('health watch baseline', () => {
  it('learns quietly, then flags a figure far outside its spread and keeps it out of the baseline', () => {
    const learnt = feed([snapshot({ processes: 200 }), snapshot({ processes: 204 }), snapshot({ processes: 198 }), snapshot({ processes: 202 })]);
    assert.deepEqual(learnt.departures.flat(), []);
    const spike = assessHealth(learnt.baseline, HOST, snapshot({ processes: 900, uptime: 2000 }), at);
    assert.deepEqual(spike.departures.map((departure) => [departure.Kind, departure.Name, departure.Found]), [['figure', 'ProcessCount', '900']]);
    assert.equal(spike.baseline.Figures.ProcessCount?.Count, learnt.baseline.Figures.ProcessCount?.Count, 'the spike is not folded in');
    // Still there next time: flagged again.
    const again = assessHealth(spike.baseline, HOST, snapshot({ processes: 905, uptime: 2100 }), at);
    assert.equal(again.departures.length, 1);
  });

  it('does not flag figures during learning, however wild', () => {
    const { departures } = feed([snapshot({ processes: 10 }), snapshot({ processes: 5000 })]);
    assert.deepEqual(departures.flat(), []);
  });

  it('tolerates small absolute changes on a figure that never moved (its floor), not large ones', () => {
    const steady = feed([snapshot(), snapshot(), snapshot(), snapshot()]).baseline;
    assert.deepEqual(assessHealth(steady, HOST, snapshot({ load: 1.2, uptime: 5000 }), at).departures, []);
    assert.equal(assessHealth(steady, HOST, snapshot({ load: 8, uptime: 5000 }), at).departures[0]?.Name, 'LoadAverage1m');
  });

  it('flags a new listening socket and a new kernel module once, then learns them', () => {
    const base = feed([snapshot()]).baseline;
    const changed = assessHealth(base, HOST, snapshot({ sockets: ['tcp/22', 'tcp/4444'], modules: ['ext4', 'rootkit'], uptime: 5000 }), at);
    assert.deepEqual(changed.departures.map((departure) => [departure.Kind, departure.Name, departure.Found, departure.Severity]), [
      ['added', 'ListeningSockets', 'tcp/4444', 'warning'], ['added', 'Modules', 'rootkit', 'critical']]);
    assert.deepEqual(assessHealth(changed.baseline, HOST, snapshot({ sockets: ['tcp/22', 'tcp/4444'], modules: ['ext4', 'rootkit'], uptime: 6000 }), at)
      .departures, []);
  });

  it('flags a changed kernel and a reboot', () => {
    const base = feed([snapshot({ uptime: 10_000 })]).baseline;
    const { departures } = assessHealth(base, HOST, snapshot({ kernel: '6.1.0-2', uptime: 30 }), at);
    assert.deepEqual(departures.map((departure) => departure.Kind).sort(), ['kernel-changed', 'rebooted']);
  });

  it('reads back a stored baseline, and refuses what is not one', () => {
    const { baseline } = feed([snapshot(), snapshot()]);
    assert.deepEqual(readHostBaseline(JSON.parse(JSON.stringify(baseline))), baseline);
    assert.equal(readHostBaseline({ ...baseline, Version: 99 }), undefined);
    assert.equal(readHealthSnapshot({ Kernel: 'x' }), undefined);
  });
});
