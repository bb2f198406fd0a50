// The verifier's pure logic: verdicts from failures, appraisal of software evidence against boot and
// reference values, class settings combined down the tree, reference documents, sealing to a
// measurement and EAR claims.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appraise, statusOf } from '../../../src/services/attest/domain/appraisal.ts';
import { effectiveSettings, referenceClass, mayHoldKeys, DEFAULT_ACTIONS } from '../../../src/services/attest/domain/settings.ts';
import { canonicalReferencePolicy, parseReferencePolicy } from '../../../src/services/attest/domain/reference-policy.ts';
import { measurementDigest, openSealed, sealToMeasurement } from '../../../src/services/attest/domain/sealing.ts';
import { earClaims, earStatusOf } from '../../../src/services/attest/domain/ear.ts';
import { openVault, sealVault, VAULT_FORMAT } from '../../../src/services/attest/domain/vault.ts';
import type { HostClassRecord } from '../../../src/shared/store/index.ts';

const digest = (text: string) => createHash('sha256').update(text).digest('hex');
const event = (component: string, text: string) => ({ Pcr: 23, Component: component, Digest: digest(text) });

describe('verdicts', () => {
  it('contraindicates on high or critical failures, warns on the rest, stays pending without reference values', () => {
    assert.equal(statusOf([]), 'affirming');
    assert.equal(statusOf([{ Id: 'operational-unexpected', Severity: 'low', Component: 'listening-port' }]), 'warning');
    assert.equal(statusOf([{ Id: 'reference-missing', Severity: 'medium', Component: 'reference-values' }]), 'pending');
    assert.equal(statusOf([{ Id: 'reference-missing', Severity: 'medium', Component: 'r' }, { Id: 'x', Severity: 'high', Component: 'c' }]), 'contraindicated');
    assert.equal(statusOf([{ Id: 'quote-signature', Severity: 'critical', Component: 'quote' }]), 'contraindicated');
    assert.equal(mayHoldKeys('affirming'), true);
    assert.equal(mayHoldKeys('warning'), true);
    for (const status of ['pending', 'contraindicated', 'silent', undefined] as const) assert.equal(mayHoldKeys(status), false);
  });
});

describe('appraisal of software evidence', () => {
  const reference = { Components: { '/boot/vmlinuz': [digest('k1'), digest('k2')], '/boot/initrd': [digest('i1')] } };
  const base = { mode: 'software' as const, nonce: randomBytes(32), nonceValid: true, akTrusted: true, reference };

  it('affirms measurements among the accepted values (several accepted at once)', () => {
    const result = appraise({ ...base, events: [event('/boot/vmlinuz', 'k2'), event('/boot/initrd', 'i1')] });
    assert.equal(result.status, 'affirming');
    assert.deepEqual(result.current, { '/boot/vmlinuz': digest('k2'), '/boot/initrd': digest('i1') });
  });

  it('reports a measurement changed since boot, with what was expected and found', () => {
    const result = appraise({ ...base, events: [event('/boot/vmlinuz', 'k1'), event('/boot/initrd', 'i1'), event('/boot/vmlinuz', 'k2')] });
    assert.equal(result.status, 'contraindicated');
    const changed = result.failures.find((failure) => failure.Id === 'measurement-changed')!;
    assert.deepEqual([changed.Component, changed.Expected, changed.Found], ['/boot/vmlinuz', digest('k1'), digest('k2')]);
    assert.equal(result.boot['/boot/vmlinuz'], digest('k1'));
  });

  it('reports unexpected, missing and unlisted components', () => {
    const result = appraise({ ...base, events: [event('/boot/vmlinuz', 'evil'), event('/opt/extra', 'x')] });
    const ids = result.failures.map((failure) => `${failure.Id}:${failure.Component}`).sort();
    assert.deepEqual(ids, ['measurement-missing:/boot/initrd', 'measurement-unexpected:/boot/vmlinuz', 'measurement-unlisted:/opt/extra']);
    assert.equal(result.failures.find((failure) => failure.Id === 'measurement-unexpected')!.Expected, 'one of 2 accepted values');
  });

  it('believes nothing from evidence with a bad challenge', () => {
    const result = appraise({ ...base, nonceValid: false, events: [event('/boot/vmlinuz', 'evil')] });
    assert.deepEqual(result.failures.map((failure) => failure.Id), ['nonce-invalid']);
    assert.equal(result.status, 'contraindicated');
  });

  it('in TPM mode, refuses evidence without a quote or without an enrolled key', () => {
    const noQuote = appraise({ ...base, mode: 'tpm', events: [event('/boot/vmlinuz', 'k1')] });
    assert.deepEqual(noQuote.failures.map((failure) => failure.Id), ['quote-missing']);
    const noKey = appraise({ ...base, mode: 'tpm', events: [], quote: { attest: Buffer.alloc(10), signature: Buffer.alloc(10) } });
    assert.deepEqual(noKey.failures.map((failure) => failure.Id), ['ak-unknown']);
  });

  it('compares the operational report with the expected sets: warnings only', () => {
    const result = appraise({ ...base, events: [event('/boot/vmlinuz', 'k1'), event('/boot/initrd', 'i1')],
      reference: { ...reference, Operational: { ListeningPorts: ['tcp/22'] } },
      operational: { ListeningPorts: ['tcp/22', 'tcp/4444'], Modules: [], Executables: [], Users: [] } });
    assert.equal(result.status, 'warning');
    assert.deepEqual(result.failures.map((failure) => [failure.Id, failure.Found]), [['operational-unexpected', 'tcp/4444']]);
  });
});

describe('class settings', () => {
  const cls = (name: string, parent?: string, attestation?: HostClassRecord['attestation']): HostClassRecord =>
    ({ accountId: '1', name, parent, createdAt: new Date(), keyIds: [], attestation });
  const classes = new Map([
    ['web', cls('web', undefined, { mode: 'software', intervalSeconds: 30, silentAfter: 3, actions: DEFAULT_ACTIONS, joinTokens: true })],
    ['web/jp', cls('web/jp', 'web')],
    ['pci', cls('pci', undefined, { mode: 'tpm', intervalSeconds: 5, silentAfter: 2,
      actions: { contraindicated: ['revoke'], warning: ['flag'], silent: ['alert'] }, joinTokens: false })],
    ['plain', cls('plain')],
  ]);

  it('inherit down the tree and combine so the strictest wins', () => {
    assert.equal(effectiveSettings(classes, ['web/jp'])?.mode, 'software');
    assert.equal(effectiveSettings(classes, ['plain']), undefined);
    const both = effectiveSettings(classes, ['web/jp', 'pci'])!;
    assert.equal(both.mode, 'tpm');
    assert.equal(both.intervalSeconds, 5);
    assert.equal(both.silentAfter, 2);
    assert.deepEqual(both.actions.contraindicated, ['alert', 'flag', 'revoke']);
    assert.equal(both.joinTokens, false, 'one class refusing join tokens is enough');
    assert.equal(effectiveSettings(classes, ['web/jp'])?.joinTokens, true);
    assert.equal(referenceClass(classes, ['web/jp']), 'web');
    assert.equal(referenceClass(classes, ['plain']), undefined);
  });
});

describe('reference documents', () => {
  it('are parsed strictly and stored canonically', () => {
    const document = parseReferencePolicy({ Components: { b: [digest('2').toUpperCase(), digest('1')], a: [digest('3')] } });
    assert.equal(canonicalReferencePolicy(document), JSON.stringify({ Components: { a: [digest('3')], b: [digest('1'), digest('2')].sort() } }));
    assert.throws(() => parseReferencePolicy({ Components: { a: ['not-a-digest'] } }), { code: 'ValidationException' });
    assert.throws(() => parseReferencePolicy({ Components: {}, Extra: 1 }), { code: 'ValidationException' });
    assert.throws(() => parseReferencePolicy({ Components: { a: [] } }), { code: 'ValidationException' });
  });
});

describe('vaults and sealing', () => {
  const key = randomBytes(32);

  it('a vault opens only under its host id', () => {
    const sealed = sealVault(key, 'h-1', { Failures: [], Current: { a: digest('a') } });
    assert.deepEqual(openVault(key, 'h-1', VAULT_FORMAT, sealed).Current, { a: digest('a') });
    assert.throws(() => openVault(key, 'h-2', VAULT_FORMAT, sealed));
    assert.throws(() => openVault(key, 'h-1', VAULT_FORMAT + 1, sealed));
  });

  it('sealed data opens only for the same host measuring the same', () => {
    const measured = measurementDigest({ b: digest('b'), a: digest('a') });
    assert.deepEqual(measured, measurementDigest({ a: digest('a'), b: digest('b') }));
    const blob = sealToMeasurement(key, 'h-1', measured, Buffer.from('secret'));
    const opened = openSealed(key, 'h-1', measured, blob);
    assert.equal(opened.kind === 'opened' && opened.plaintext.toString(), 'secret');
    assert.equal(openSealed(key, 'h-2', measured, blob).kind, 'other-host');
    assert.equal(openSealed(key, 'h-1', measurementDigest({ a: digest('changed') }), blob).kind, 'measurement-mismatch');
    const tampered = Buffer.from(blob);
    tampered[tampered.length - 1] ^= 1;
    assert.equal(openSealed(key, 'h-1', measured, tampered).kind, 'malformed');
    assert.equal(openSealed(key, 'h-1', measured, Buffer.from('junk')).kind, 'malformed');
  });
});

describe('EAR claims', () => {
  it('map verdicts to EAR statuses and carry the nonce and one submodule per host', () => {
    assert.equal(earStatusOf('silent'), 'contraindicated');
    assert.equal(earStatusOf('pending'), 'none');
    const claims = earClaims({ issuer: 'https://v', now: new Date(1_000_000), lifetimeSeconds: 60, nonce: 'n1', verifierId: { developer: 'd', build: 'b' },
      submods: [{ hostId: 'h-1', status: 'warning', classes: ['web'], failures: ['operational-unexpected'], quarantined: false }] });
    assert.equal(claims.eat_nonce, 'n1');
    assert.equal(claims.exp, 1060);
    assert.equal((claims.submods as Record<string, Record<string, unknown>>)['h-1']['ear.status'], 'warning');
  });
});
