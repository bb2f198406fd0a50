// The store side of token-less TPM enrolment: endorsement keys allowed per class (one class each),
// pending enrolments that a caller without credentials cannot pile up, and one live host per EK.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore, StoreConflictError, StoreDuplicateError, type HostRecord, type TpmEnrolmentRecord } from '../../../src/shared/store/index.ts';
import { SqliteFleetStore } from '../../../src/shared/store/sqlite-fleet.ts';
import { makeTempDir } from '../../helpers/server.ts';

const ACCOUNT = '111111111111';
const EK_A = 'a'.repeat(64);
const EK_B = 'b'.repeat(64);
const EK_C = 'c'.repeat(64);
const t0 = new Date('2026-11-01T00:00:00Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);

function host(hostId: string, className: string): HostRecord {
  return { hostId, accountId: ACCOUNT, name: hostId, publicKeyDer: Buffer.from([1]), certificateSerial: '01', certificateNotAfter: at(86_400),
    status: 'active', createdAt: t0, revision: 0, classes: [className] };
}

function enrolment(enrolmentId: string, fingerprint: string, createdAt: Date): TpmEnrolmentRecord {
  return { enrolmentId, accountId: ACCOUNT, className: 'db', fingerprint, secretDigest: Buffer.alloc(32, 7), createdAt,
    expiresAt: new Date(createdAt.getTime() + 300_000), inputs: { domainKeyId: 'dk-1', wrapped: Buffer.from('wrapped') } };
}

describe('token-less TPM enrolment (store)', () => {
  let dir: string;
  let store: SqliteStore;
  let fleet: SqliteFleetStore;

  before(async () => {
    dir = makeTempDir();
    store = SqliteStore.open(join(dir, 'fleet.db'));
    await store.initializeModule({ id: 'dk-1', module: 'software', wrapped: Buffer.from([1, 2, 3]), createdAt: t0, state: 'active' }, {});
    fleet = new SqliteFleetStore(store);
    await fleet.createClass(ACCOUNT, 'db', undefined, t0);
    await fleet.createClass(ACCOUNT, 'web', undefined, t0);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('allows an endorsement key in one class only', async () => {
    const allow = (className: string, fingerprint: string, accountId = ACCOUNT) =>
      fleet.allowEk({ fingerprint, accountId, className, addedBy: 'arn:test', addedAt: t0 });
    assert.equal(await allow('db', EK_A), true);
    assert.equal(await allow('db', EK_A), false, 'allowing it again changes nothing');
    await assert.rejects(allow('web', EK_A), StoreDuplicateError);
    await assert.rejects(allow('db', EK_A, '222222222222'), StoreConflictError, 'that account has no class db');
    await assert.rejects(allow('nope', EK_B), StoreConflictError);
    assert.equal(await allow('db', EK_B), true);
    assert.deepEqual((await fleet.listAllowedEks(ACCOUNT, 'db')).map((ek) => ek.fingerprint), [EK_A, EK_B]);
    assert.equal((await fleet.findAllowedEk(EK_A))?.className, 'db');
    assert.equal(await fleet.findAllowedEk(EK_C), undefined);
  });

  it('keeps the newest few pending enrolments of an EK, each usable once and only before it expires', async () => {
    for (let index = 1; index <= 4; index += 1) {
      assert.equal(await fleet.createTpmEnrolment(enrolment(`te-${index}`, EK_A, at(index)), 3, at(index)), true);
    }
    assert.equal(await fleet.takeTpmEnrolment('te-1', at(5)), undefined, 'the oldest made room for the fourth');
    assert.equal((await fleet.takeTpmEnrolment('te-2', at(5)))?.fingerprint, EK_A);
    assert.equal(await fleet.takeTpmEnrolment('te-2', at(5)), undefined, 'single use');
    assert.equal(await fleet.takeTpmEnrolment('te-3', at(400)), undefined, 'expired');
    assert.equal(await fleet.takeTpmEnrolment('te-3', at(5)), undefined, 'and gone once asked for');
    assert.equal(await fleet.purgeTpmEnrolments(at(400)), 1, 'te-4 expired too');
    assert.equal(await fleet.createTpmEnrolment(enrolment('te-5', EK_C, t0), 3, t0), false, 'an EK on no list gets no row');
    const rows = store.database.prepare('SELECT count(*) AS n FROM tpm_enrolments').get() as { n: number };
    assert.equal(rows.n, 0);
  });

  it('enrols one live host per endorsement key, and frees the key when that host is removed', async () => {
    assert.deepEqual(await fleet.enrollHostByEndorsement(host('h-01', 'db'), EK_A, t0), { kind: 'enrolled' });
    assert.equal((await fleet.findAllowedEk(EK_A))?.enrolledHostId, 'h-01');
    assert.deepEqual((await fleet.getHost(ACCOUNT, 'h-01'))?.classes, ['db']);
    assert.deepEqual(await fleet.enrollHostByEndorsement(host('h-02', 'db'), EK_A, t0), { kind: 'in-use', hostId: 'h-01' });
    assert.equal(await fleet.getHost(ACCOUNT, 'h-02'), undefined, 'nothing recorded for the refused host');
    assert.deepEqual(await fleet.enrollHostByEndorsement(host('h-03', 'web'), EK_B, t0), { kind: 'not-allowed' }, 'EK_B is allowed in db, not web');
    assert.deepEqual(await fleet.enrollHostByEndorsement(host('h-04', 'db'), EK_C, t0), { kind: 'not-allowed' });

    await fleet.removeHost(ACCOUNT, 'h-01', t0);
    assert.equal((await fleet.findAllowedEk(EK_A))?.enrolledHostId, undefined);
    assert.deepEqual(await fleet.enrollHostByEndorsement(host('h-05', 'db'), EK_A, t0), { kind: 'enrolled' });
  });

  it('forgets an endorsement key with its pending enrolments, and with its class', async () => {
    await fleet.createTpmEnrolment(enrolment('te-6', EK_B, t0), 3, t0);
    assert.equal(await fleet.removeAllowedEk(ACCOUNT, 'web', EK_B), false, 'not in that class');
    assert.equal(await fleet.removeAllowedEk(ACCOUNT, 'db', EK_B), true);
    assert.equal(await fleet.takeTpmEnrolment('te-6', t0), undefined, 'its pending enrolment went with it');
    assert.ok(await fleet.getHost(ACCOUNT, 'h-05'), 'a host an EK enrolled stays when the EK is removed');

    await fleet.allowEk({ fingerprint: EK_C, accountId: ACCOUNT, className: 'web', addedBy: 'arn:test', addedAt: t0 });
    await fleet.deleteClass(ACCOUNT, 'web', t0);
    assert.equal(await fleet.findAllowedEk(EK_C), undefined);
  });
});
