// Known-valid and known-invalid values for every built-in detector, context-word effects and custom detectors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileDetectorPolicy, scanText, type DetectorMatch } from '../../../src/shared/data-policy/index.ts';

function typesIn(matches: readonly DetectorMatch[]): string[] {
  return matches.map((match) => match.type);
}

function scanWith(detectors: unknown[], text: string, extra: Record<string, unknown> = {}): DetectorMatch[] {
  return scanText(compileDetectorPolicy({ detectors, ...extra }), text);
}

describe('payment_card', () => {
  // Published test numbers of the card networks (Stripe/PayPal test ranges).
  const valid = ['4111111111111111', '4012888888881881', '5555555555554444', '2223003122003222', '378282246310005',
    '6011111111111117', '3530111333300000', '30569309025904', '6200000000000005', '4111 1111 1111 1111', '4111-1111-1111-1111'];
  for (const number of valid) {
    it(`finds ${number} with its exact offset and length`, () => {
      const text = `paid with ${number} yesterday`;
      const [match, ...rest] = scanWith(['payment_card'], text);
      assert.equal(rest.length, 0);
      assert.deepEqual({ type: match?.type, offset: match?.offset, length: match?.length },
        { type: 'payment_card', offset: 10, length: number.length });
    });
  }
  it('refuses a Luhn failure, an unknown prefix and a wrong length', () => {
    assert.deepEqual(scanWith(['payment_card'], 'card 4111111111111112, 9111111111111111 and 411111111111111'), []);
  });
  it('is more confident with a context word near', () => {
    const [bare] = scanWith(['payment_card'], 'ref 4111111111111111');
    const [withContext] = scanWith(['payment_card'], 'credit card: 4111111111111111');
    assert.ok(bare && withContext && withContext.confidence > bare.confidence);
    const [far] = scanWith(['payment_card'], `card${' '.repeat(100)}4111111111111111`, { contextWindow: 16 });
    assert.equal(far?.confidence, bare.confidence);
  });
});

describe('us_ssn', () => {
  it('finds a dashed SSN and refuses the excluded ranges', () => {
    assert.deepEqual(typesIn(scanWith(['us_ssn'], 'id 123-45-6789')), ['us_ssn']);
    for (const excluded of ['000-12-3456', '666-12-3456', '900-12-3456', '999-12-3456', '123-00-4567', '123-45-0000']) {
      assert.deepEqual(scanWith(['us_ssn'], `ssn ${excluded}`), [], excluded);
    }
  });
  it('counts unseparated or space-separated numbers only with a context word', () => {
    assert.deepEqual(scanWith(['us_ssn'], 'order 123456789 and 123 45 6789'), []);
    assert.deepEqual(typesIn(scanWith(['us_ssn'], 'SSN: 123456789')), ['us_ssn']);
    assert.deepEqual(typesIn(scanWith(['us_ssn'], 'social security 123 45 6789')), ['us_ssn']);
    assert.deepEqual(scanWith(['us_ssn'], 'ssn 123-45 6789'), []);
  });
});

describe('iban', () => {
  const valid = ['DE89370400440532013000', 'GB29NWBK60161331926819', 'FR1420041010050500013M02606', 'NL91ABNA0417164300',
    'CH9300762011623852957', 'BE68539007547034', 'DE89 3704 0044 0532 0130 00', 'GB29 NWBK 6016 1331 9268 19'];
  for (const iban of valid) {
    it(`finds ${iban}`, () => {
      const matches = scanWith(['iban'], `pay to ${iban}.`);
      assert.deepEqual(matches.map((m) => [m.type, m.offset, m.length]), [['iban', 7, iban.length]]);
    });
  }
  it('refuses a wrong check digit, a wrong length, bad grouping and an unknown country', () => {
    assert.deepEqual(scanWith(['iban'], 'DE88370400440532013000 DE8937040044053201300 DE89 370 400440532013000 ZZ89370400440532013000'), []);
  });
  it('is more confident near "IBAN"', () => {
    const [bare] = scanWith(['iban'], 'x DE89370400440532013000');
    const [withContext] = scanWith(['iban'], 'IBAN DE89370400440532013000');
    assert.ok(bare && withContext && withContext.confidence > bare.confidence);
  });
});

describe('email', () => {
  it('finds addresses with offsets, not things that only look alike', () => {
    const text = 'write to jane.doe+tag@mail.example.co.uk or bob@example.org; not a@b, foo@bar or @example.com';
    const matches = scanWith(['email'], text);
    assert.deepEqual(matches.map((m) => text.slice(m.offset, m.offset + m.length)), ['jane.doe+tag@mail.example.co.uk', 'bob@example.org']);
  });
  it('refuses a local part longer than 64 characters as a whole', () => {
    const matches = scanWith(['email'], `${'a'.repeat(80)}@example.com`);
    assert.deepEqual(matches, []);
  });
});

describe('phone', () => {
  it('finds valid numbers for the default region and international ones', () => {
    const text = 'call (213) 373-4253 or +44 20 7946 0958 today';
    const matches = scanWith(['phone'], text);
    assert.deepEqual(matches.map((m) => text.slice(m.offset, m.offset + m.length)), ['(213) 373-4253', '+44 20 7946 0958']);
  });
  it('refuses invalid numbers and reads national numbers in the configured region', () => {
    assert.deepEqual(scanWith(['phone'], 'call (000) 000-0000'), []);
    assert.equal(scanWith(['phone'], 'tel 030 901820', { phoneRegion: 'DE' }).length, 1);
    assert.equal(scanWith(['phone'], 'tel 030 901820', { phoneRegion: 'US' }).length, 0);
  });
});

describe('custom detectors', () => {
  it('matches keywords as whole words, case-insensitively', () => {
    const text = 'Project BlueBird and project bluebirds; PROJECT   bluebird';
    const matches = scanWith([{ name: 'codename', keywords: ['project bluebird'] }], text);
    assert.deepEqual(matches.map((m) => m.offset), [0, 40]);
    assert.deepEqual(typesIn(matches), ['codename', 'codename']);
    const punctuated = scanWith([{ name: 'terms', keywords: ['e-mail list', 'c++', 'a.b'] }], 'the E-Mail list, c++ and axb');
    assert.deepEqual(punctuated.map((m) => m.offset), [4, 17]);
  });
  it('matches a named regex and applies contextWords, requireContext and minConfidence', () => {
    const employee = { name: 'employee-id', pattern: 'EMP-\\d{6}', contextWords: ['employee'] };
    assert.equal(scanWith([employee], 'ref EMP-123456').length, 1);
    assert.equal(scanWith([{ ...employee, requireContext: true }], 'ref EMP-123456').length, 0);
    assert.equal(scanWith([{ ...employee, requireContext: true }], 'employee EMP-123456').length, 1);
    assert.equal(scanWith([{ ...employee, minConfidence: 0.8 }], 'ref EMP-123456').length, 0);
    const [strong] = scanWith([{ ...employee, minConfidence: 0.8 }], 'Employee: EMP-123456');
    assert.equal(strong?.confidence, 0.9);
  });
});
