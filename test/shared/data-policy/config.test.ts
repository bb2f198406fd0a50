// The detector policy configuration: what compiles, and the typed errors naming the field for what does not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../../src/shared/errors.ts';
import { compileDetectorPolicy, findUnsafePatternConstruct } from '../../../src/shared/data-policy/index.ts';

function refusal(input: unknown): string {
  try {
    compileDetectorPolicy(input, 'policies[0].match');
  } catch (error) {
    assert.ok(error instanceof UserError);
    assert.equal(error.code, 'InvalidConfiguration');
    assert.equal(error.httpStatus, 400);
    return error.message;
  }
  assert.fail('configuration was accepted');
}

describe('compileDetectorPolicy', () => {
  it('compiles built-in and custom detectors once', () => {
    const factory = compileDetectorPolicy({ detectors: ['payment_card', 'us_ssn', 'iban', 'email', 'phone',
      { name: 'codename', keywords: ['bluebird'], contextWords: ['project'], window: 32, minConfidence: 0.5 },
      { name: 'employee-id', pattern: 'EMP-\\d{6}', ignoreCase: true }], phoneRegion: 'DE', contextWindow: 48 });
    assert.deepEqual(factory.detectorTypes, ['payment_card', 'us_ssn', 'iban', 'email', 'phone', 'codename', 'employee-id']);
  });

  it('names the field of each mistake', () => {
    assert.match(refusal({ detectors: ['credit_card'] }), /policies\[0\]\.match\.detectors\[0\]/);
    assert.match(refusal({ detectors: [] }), /policies\[0\]\.match\.detectors/);
    assert.match(refusal({ detectors: [{ name: 'x', pattern: '(unclosed' }] }), /detectors\[0\]\.pattern: is not a valid regular expression/);
    assert.match(refusal({ detectors: [{ name: 'x', pattern: 'a', keywords: ['b'] }] }), /detectors\[0\]: needs exactly one of pattern or keywords/);
    assert.match(refusal({ detectors: [{ name: 'x' }] }), /needs exactly one of pattern or keywords/);
    assert.match(refusal({ detectors: [{ name: 'email', pattern: 'a' }] }), /detectors\[0\]\.name: is the name of a built-in detector/);
    assert.match(refusal({ detectors: [{ name: 'x', pattern: 'a' }, { name: 'x', keywords: ['b'] }] }), /detectors\[1\]: names x twice/);
    assert.match(refusal({ detectors: [{ name: 'x', pattern: 'a*' }] }), /pattern: must not match the empty string/);
    assert.match(refusal({ detectors: [{ name: 'x', pattern: 'a', minConfidence: 2 }] }), /detectors\[0\]\.minConfidence/);
    assert.match(refusal({ detectors: [{ name: 'x', pattern: 'a', requireContext: true }] }), /requireContext needs contextWords/);
    assert.match(refusal({ detectors: ['phone'], phoneRegion: 'XX' }), /phoneRegion/);
    assert.match(refusal({ detectors: ['email'], unknown: 1 }), /Unrecognized key/);
  });

  it('refuses patterns that backtrack catastrophically, and they could not hang a scan anyway', () => {
    for (const pattern of ['(a+)+b', '(a*)*b', '(a|a)*b', '(?:\\d{1,3})+x', '(a)\\1', '(?<n>a)\\k<n>']) {
      assert.match(refusal({ detectors: [{ name: 'x', pattern }] }), /detectors\[0\]\.pattern: /, pattern);
    }
    for (const pattern of ['EMP-\\d{6}', '(?:ab)+c', '[(+*]+x', '(?:foo|bar)-\\d+', '\\(\\d+\\)+']) {
      assert.equal(findUnsafePatternConstruct(pattern), undefined, pattern);
    }
  });
});
