// Operational parameters end to end on this Linux host: what the agent collects from /proc and /etc,
// and how the verifier validates a report and turns deviations from a class's expected sets into failures.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { collectOperational, measureFile } from '../../src/agent/operational.ts';
import {
  compareOperational, expectedFromReport, parseOperationalReport, type ReportedOperational,
} from '../../src/services/attest/domain/operational.ts';
import { UserError } from '../../src/shared/errors.ts';
import { makeTempDir } from '../helpers/server.ts';

const sha256Of = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

const report = (overrides: Partial<ReportedOperational> = {}): ReportedOperational => ({
  ListeningPorts: ['tcp/22'], Modules: ['ext4'], Users: ['root'],
  Executables: [{ Path: '/usr/sbin/sshd', Sha256: 'a'.repeat(64) }], ...overrides,
});

describe('collectOperational on this host', () => {
  it('sees a TCP listener while it listens and not after it closes', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      assert.ok((await collectOperational()).ListeningPorts.includes(`tcp/${port}`));
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    assert.ok(!(await collectOperational()).ListeningPorts.includes(`tcp/${port}`));
  });

  it("reports this process's own executable with its sha256", async () => {
    const path = realpathSync(process.execPath);
    const { Executables } = await collectOperational({ maxExecutables: 2000 });
    const own = Executables.find((entry) => entry.Path === path);
    assert.ok(own, `expected ${path} among ${Executables.length} executables`);
    assert.equal(own.Sha256, sha256Of(path));
    const paths = Executables.map((entry) => entry.Path);
    assert.deepEqual(paths, [...new Set(paths)].sort(), 'unique by path and sorted');
  });

  it('says the report is truncated when it caps the executables', async () => {
    const capped = await collectOperational({ maxExecutables: 0 });
    assert.deepEqual(capped.Executables, []);
    assert.equal(capped.Truncated, true);
    await assert.rejects(collectOperational({ maxExecutables: 1e9 }), (error) => error instanceof UserError);
  });

  it('lists root among the login users, and modules as a sorted list', async () => {
    const collected = await collectOperational();
    assert.ok(collected.Users.includes('root'));
    assert.deepEqual(collected.Modules, [...collected.Modules].sort());
    assert.doesNotThrow(() => parseOperationalReport(JSON.parse(JSON.stringify(collected))), 'the verifier accepts what the agent sends');
  });
});

describe('measureFile', () => {
  it('hashes a file, and names the path when it cannot', async () => {
    const path = join(makeTempDir(), 'kernel.img');
    writeFileSync(path, Buffer.alloc(200_000, 7));
    assert.deepEqual(await measureFile(path), { Path: path, Sha256: sha256Of(path) });
    const missing = join(makeTempDir(), 'absent.img');
    await assert.rejects(measureFile(missing), (error: Error) => error.message.includes(missing) && /no such file/.test(error.message));
  });
});

describe('compareOperational', () => {
  it('turns one unexpected port into one low failure', () => {
    const failures = compareOperational(report({ ListeningPorts: ['tcp/22', 'tcp/4444'] }), { ListeningPorts: ['tcp/22'] });
    assert.deepEqual(failures, [{ Id: 'operational-unexpected', Severity: 'low', Component: 'listening-port',
      Expected: 'one of 1 expected value', Found: 'tcp/4444' }]);
  });

  it('checks no category the class leaves out, and nothing without expectations', () => {
    assert.deepEqual(compareOperational(report({ Users: ['mallory'] }), { ListeningPorts: ['tcp/22'] }), []);
    assert.deepEqual(compareOperational(report(), undefined), []);
  });

  it('shows an unexpected executable by path and digest', () => {
    const [failure] = compareOperational(report(), { Executables: ['B'.repeat(64)] });
    assert.equal(failure.Component, 'executable');
    assert.equal(failure.Found, `/usr/sbin/sshd ${'a'.repeat(64)}`);
  });

  it('caps failures at 50 and adds a truncation marker', () => {
    const ports = Array.from({ length: 80 }, (_, index) => `tcp/${1000 + index}`);
    const failures = compareOperational(report({ ListeningPorts: ports }), { ListeningPorts: [] });
    assert.equal(failures.length, 51);
    assert.ok(failures.slice(0, 50).every((failure) => failure.Id === 'operational-unexpected'));
    assert.equal(failures[50].Id, 'operational-truncated');
    assert.match(failures[50].Detail ?? '', /30 more/);
  });

  it('accepts a known-good report adopted as the expected sets', () => {
    const good = report({ Executables: [{ Path: '/bin/a', Sha256: 'C'.repeat(64) }] });
    assert.deepEqual(compareOperational(good, expectedFromReport(good)), []);
  });
});

describe('parseOperationalReport', () => {
  const rejects = (value: unknown) => assert.throws(() => parseOperationalReport(value),
    (error) => error instanceof UserError && error.code === 'ValidationException');

  it('accepts a well-formed report and normalises digests', () => {
    const parsed = parseOperationalReport({ ...report(), Executables: [{ Path: '/bin/a', Sha256: 'F'.repeat(64) }], Truncated: true });
    assert.equal(parsed.Executables[0].Sha256, 'f'.repeat(64));
    assert.equal(parsed.Truncated, true);
  });

  it('rejects ill-typed input', () => {
    rejects(null);
    rejects('report');
    rejects({ ...report(), ListeningPorts: [22] });
    rejects({ ...report(), ListeningPorts: ['tcp/70000'] });
    rejects({ ...report(), Executables: [{ Path: '/bin/a', Sha256: 'not-a-digest' }] });
    rejects({ ...report(), Extra: true });
    rejects({ Modules: [], Users: [], Executables: [] });
  });

  it('rejects oversized input', () => {
    rejects({ ...report(), Modules: Array.from({ length: 2049 }, (_, index) => `m${index}`) });
    rejects({ ...report(), Users: ['u'.repeat(4097)] });
    rejects({ ...report(), Executables: Array.from({ length: 2001 }, (_, index) => ({ Path: `/bin/${index}`, Sha256: 'a'.repeat(64) })) });
  });
});
