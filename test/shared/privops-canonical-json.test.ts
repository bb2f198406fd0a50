// RFC 8785 (JCS) known answers for the canonical JSON privileged-operation requests are signed over.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson } from '../../src/shared/crypto/index.ts';
import { UserError } from '../../src/shared/errors.ts';
import { parsePrivopRequestFile } from '../../src/shared/privop-wire.ts';

describe('canonical JSON (RFC 8785)', () => {
  it('serialises the RFC 8785 section 3.2.2 example exactly', () => {
    const input = JSON.parse('{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],'
      + '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}');
    assert.equal(canonicalJson(input).toString('utf8'),
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it('sorts keys by UTF-16 code units (RFC 8785 section 3.2.3)', () => {
    const input = JSON.parse('{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",'
      + '"\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}') as Record<string, string>;
    const order = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'];
    assert.equal(canonicalJson(input).toString('utf8'), `{${order.map((key) => `${JSON.stringify(key)}:${JSON.stringify(input[key])}`).join(',')}}`);
  });

  it('refuses what JSON cannot hold', () => {
    assert.throws(() => canonicalJson(undefined), TypeError);
    assert.throws(() => canonicalJson({ a: Number.NaN }), TypeError);
    assert.throws(() => canonicalJson({ a: '\ud800' }), TypeError);
  });

  it('a request file with a lone surrogate is a malformed request (a typed 400), not a crash', () => {
    assert.throws(() => parsePrivopRequestFile({ Request: { Version: 1, Operation: 'system.snapshot', Parameters: { note: '\ud800' },
      Target: { HostId: 'h-0a' }, NotBefore: '2026-11-24T00:00:00Z', NotAfter: '2026-11-24T01:00:00Z', Nonce: 'A'.repeat(24), Requester: 'r',
      ResultKey: Buffer.alloc(32, 1).toString('base64url') }, Signature: 'x..y' }),
    (error: unknown) => error instanceof UserError && error.code === 'PrivopMalformedRequest' && error.httpStatus === 400);
  });
});
