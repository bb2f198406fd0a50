// The health watch end to end: system.snapshot campaigns over a class of real agents, results opened by the watch key's
// holder only, per-host baselines kept in its state directory, a new listening socket flagged once and then learnt.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { repoRoot, startTestServer, makeTempDir, trustplaneBin, type TestServer } from '../../helpers/server.ts';
import { run } from '../../helpers/exec.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson } from '../../helpers/cli.ts';
import { startTestAgent, type TestAgent } from '../../helpers/agent.ts';
import type { HealthDeparture } from '../../../src/shared/privop-health.ts';

describe('privop watch: health baselines from sealed snapshots', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  const agents: TestAgent[] = [];
  let listener: Server | undefined;
  const dir = makeTempDir('trustplane-watch-');
  const keys = join(dir, 'watch-keys');
  const state = join(dir, 'watch-state');
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const watchOnce = () => run(process.execPath, [trustplaneBin, 'privop', 'watch', '--class', 'web', '--key', join(keys, 'result.key'), '--state', state,
    '--ca', join(dir, 'account-ca.pem'), '--once', '--wait', '60s'], { env, cwd: repoRoot });
  const departuresIn = (stdout: string) => stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as HealthDeparture);

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    await trustplane('class', 'create', 'web');
    await trustplane('privop', 'keygen', '--out', keys);
    const trust = join(dir, 'trust.json');
    writeFileSync(trust, JSON.stringify({ server: { operations: ['system.snapshot'] } }));
    for (const name of ['watch-a', 'watch-b']) {
      const token = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'web', '--uses', '1', '--json'], { env })).Token;
      agents.push(await startTestAgent({ serverUrl: server.url, joinToken: token, name, extraArgs: ['--privop-trust', trust] }));
    }
    await Promise.all(agents.map((agent) => agent.waitFor((status) => status.Connected, 'the push stream')));
    const identity = JSON.parse(readFileSync(join(agents[0]!.stateDir, 'identity.json'), 'utf8')) as { CaCertificate: string };
    writeFileSync(join(dir, 'account-ca.pem'), identity.CaCertificate);
  });
  after(async () => {
    listener?.close();
    await Promise.all(agents.map((agent) => agent.stop()));
    await server?.dispose();
  });

  it('learns every host on the first round, flags a new listening socket on both hosts once, then has learnt it', async () => {
    const first = await watchOnce();
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(departuresIn(first.stdout), []);
    assert.match(first.stderr, /2 host\(s\) judged, 0 departure\(s\), 0 result\(s\) not judged/);
    assert.deepEqual(readdirSync(join(state, 'baselines')).sort(), agents.map((agent) => `${agent.hostId}.json`).sort());
    // The baselines are the watcher's: the server saw only sealed results.
    const baseline = JSON.parse(readFileSync(join(state, 'baselines', `${agents[0]!.hostId}.json`), 'utf8')) as { Samples: number; KernelRelease: string };
    assert.equal(baseline.Samples, 1);

    listener = createServer();
    await new Promise<void>((resolve) => listener!.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as { port: number }).port;
    const second = await watchOnce();
    // Other processes on this machine may open sockets too: what matters is ours, on both hosts.
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /PrivopHealthDepartures/);
    const flagged = departuresIn(second.stdout).filter((departure) => departure.Found === `tcp/${port}`);
    assert.deepEqual(flagged.map((departure) => [departure.HostId, departure.Kind, departure.Name, departure.Severity]).sort(),
      agents.map((agent) => [agent.hostId, 'added', 'ListeningSockets', 'warning']).sort());
    assert.ok(existsSync(join(state, 'departures.jsonl')));
    assert.match(readFileSync(join(state, 'departures.jsonl'), 'utf8'), new RegExp(`"Found":"tcp/${port}"`));

    const third = await watchOnce();
    assert.deepEqual(departuresIn(third.stdout).filter((departure) => departure.Found === `tcp/${port}`), []);
    assert.equal((JSON.parse(readFileSync(join(state, 'baselines', `${agents[1]!.hostId}.json`), 'utf8')) as { Samples: number }).Samples, 3);
  });

  it('a host that does not trust the server for snapshots is reported as not judged, and the round fails', async () => {
    const pinned = join(dir, 'pinned-trust.json');
    writeFileSync(pinned, JSON.stringify({ signers: [{ publicKeyFile: 'watch-keys/signer.pub', operations: ['*'] }] }));
    const token = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'web', '--uses', '1', '--json'], { env })).Token;
    const untrusting = await startTestAgent({ serverUrl: server.url, joinToken: token, name: 'watch-untrusting', extraArgs: ['--privop-trust', pinned] });
    agents.push(untrusting);
    await untrusting.waitFor((status) => status.Connected, 'the push stream');
    const ran = await watchOnce();
    assert.notEqual(ran.code, 0);
    assert.match(ran.stderr, new RegExp(`${untrusting.hostId} not judged: PrivopSignerNotTrusted`));
    assert.match(ran.stderr, /2 host\(s\) judged, \d+ departure\(s\), 1 result\(s\) not judged/);
    assert.equal(existsSync(join(state, 'baselines', `${untrusting.hostId}.json`)), false);
  });
});
