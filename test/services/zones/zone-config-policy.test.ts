import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateZoneConfig } from '../../../src/services/zones/config.ts';
import { decidePolicy, globMatches, planPolicy } from '../../../src/services/zones/s3/domain/policy.ts';

const base = () => ({
  zone: 'eu',
  kms: { endpoint: 'http://127.0.0.1:1', accessKeyId: 'KMSKEY', secretAccessKey: 'kms-secret', keyId: 'alias/zone-data' },
  clients: { AKIACLIENT0001: 'client-secret' },
  zones: {
    eu: { endpoint: 'http://127.0.0.1:2', accessKeyId: 'BACKINGEU', secretAccessKey: 'eu-secret', bucketPrefix: 'eu-' },
    us: { endpoint: 'http://127.0.0.1:3', accessKeyId: 'BACKINGUS', secretAccessKey: 'us-secret' },
  },
  defaultZone: 'eu',
  quarantine: { bucket: 'quarantine' },
  evidence: { bucket: 'evidence', zone: 'us' },
});

function refusal(input: unknown): string {
  try {
    validateZoneConfig(input);
  } catch (error) {
    assert.equal((error as { code?: string }).code, 'InvalidConfiguration');
    return (error as Error).message;
  }
  assert.fail('the configuration was accepted');
}

test('a complete zone.yaml validates, with defaults filled in', () => {
  const config = validateZoneConfig({ ...base(), listen: '127.0.0.1:0', policies: [
    { name: 'no-cards', match: { bucket: '*', prefix: '', detectors: ['payment_card'] }, action: 'deny' },
    { name: 'pii', match: { detectors: ['email'] }, action: 'route:us', keySpec: 'AES_256' },
    { name: 'public', match: { bucket: 'www', prefix: 'public/' }, action: 'pass' },
  ] });
  assert.equal(config.port, 0);
  assert.equal(config.zones.get('eu')?.bucketPrefix, 'eu-');
  assert.equal(config.zones.get('us')?.region, 'us-east-1');
  assert.deepEqual(config.quarantine, { bucket: 'quarantine', zone: 'eu' });
  assert.deepEqual(config.rules.map((rule) => rule.actions), [['deny'], ['route:us'], ['pass']]);
  assert.deepEqual(config.scanner?.detectorTypes.slice().sort(), ['email', 'payment_card']);
  assert.equal(config.chunkSize, 256 * 1024);
});

test('configuration errors name the field and never echo a secret', () => {
  assert.match(refusal({ ...base(), zones: {} }), /zones/);
  assert.match(refusal({ ...base(), defaultZone: 'mars' }), /defaultZone.*mars/);
  assert.match(refusal({ ...base(), policies: [{ name: 'r', match: { detectors: ['dna'] }, action: 'deny' }] }), /policies\[0\]\.match\.detectors: 'dna'/);
  assert.match(refusal({ ...base(), policies: [{ name: 'r', action: 'route:mars' }] }), /policies\[0\]\.action.*mars/);
  assert.match(refusal({ ...base(), policies: [{ name: 'r', action: 'shred' }] }), /policies\.0\.action|policies\[0\]/);
  assert.match(refusal({ ...base(), policies: [{ name: 'r', action: ['pass', 'deny'] }] }), /contradict/);
  assert.match(refusal({ ...base(), policies: [{ name: 'r', action: 'pass', keySpec: 'AES_128' }] }), /keySpec/);
  assert.match(refusal({ ...base(), zones: { eu: { ...base().zones.eu, hashNames: true } } }), /nameKeyId/);
  const sameCredentials = refusal({ ...base(), clients: { BACKINGEU: 'x' } });
  assert.match(sameCredentials, /must differ/);
  const withoutQuarantine = { ...base(), quarantine: undefined, policies: [{ name: 'q', action: 'quarantine' }] };
  assert.match(refusal(withoutQuarantine), /quarantine bucket/);
  assert.match(refusal({ ...base(), evidence: { bucket: 'quarantine' } }), /evidence\.bucket: must differ/);
  for (const message of [sameCredentials, refusal({ ...base(), listen: 'nowhere' })]) {
    assert.doesNotMatch(message, /client-secret|eu-secret|kms-secret/);
  }
});

test('globs match buckets and content types literally except for * and ?', () => {
  assert.ok(globMatches('*', 'anything'));
  assert.ok(globMatches('logs-*', 'logs-2026'));
  assert.ok(!globMatches('logs-*', 'xlogs-2026'));
  assert.ok(globMatches('text/*', 'text/csv'));
  assert.ok(globMatches('a?c', 'abc'));
  assert.ok(!globMatches('a.c', 'abc'));
});

test('policy: location rules decide up front, detector rules after the scan, deny and encryption outrank pass', () => {
  const { rules } = validateZoneConfig({ ...base(), defaultKeySpec: 'AES_128', policies: [
    { name: 'public', match: { bucket: 'www', prefix: 'public/' }, action: 'pass' },
    { name: 'no-cards', match: { detectors: ['payment_card'] }, action: 'deny' },
    { name: 'ssn', match: { detectors: ['us_ssn'], contentType: 'text/*' }, action: ['snapshot', 'log'], keySpec: 'AES_256' },
    { name: 'mail-us', match: { detectors: ['email'] }, action: 'route:us' },
    { name: 'hold', match: { bucket: 'inbox' }, action: 'quarantine' },
  ] });
  const clean = planPolicy(rules, { bucket: 'www', key: 'public/a.txt', contentType: 'text/plain' }, 'AES_128');
  assert.equal(clean.needsScan, true);
  assert.equal(clean.keySpec, 'AES_256', 'a detector rule that may apply raises the key strength before the content is seen');
  assert.equal(clean.unscanned.pass, 'public');
  assert.equal(decidePolicy(clean.candidates, new Set(['payment_card'])).deny, 'no-cards');
  const ssn = decidePolicy(clean.candidates, new Set(['us_ssn']));
  assert.equal(ssn.pass, undefined, 'data with an SSN is not stored in clear even under a public prefix');
  assert.deepEqual(ssn.snapshot, ['ssn']);
  assert.deepEqual(ssn.log, ['ssn']);
  const binary = planPolicy(rules, { bucket: 'data', key: 'x.bin', contentType: 'application/octet-stream' }, 'AES_128');
  assert.equal(binary.keySpec, 'AES_128');
  assert.deepEqual(decidePolicy(binary.candidates, new Set(['email'])).route, { rule: 'mail-us', zone: 'us' });
  const inbox = planPolicy(rules, { bucket: 'inbox', key: 'k', contentType: 'text/plain' }, 'AES_256');
  assert.equal(inbox.unscanned.quarantine, 'hold');
});
