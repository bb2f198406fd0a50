// RFC 8785 JSON Canonicalization Scheme (JCS): the one serialisation signed or hashed JSON documents use.
// Must never be replaced by JSON.stringify where bytes are signed or digested: key order and number form would drift.
import canonicalize from 'canonicalize';

/** The JCS bytes (UTF-8) of a JSON value; a TypeError for what JSON cannot hold (undefined, NaN, lone surrogates, cycles). */
export function canonicalJson(value: unknown): Buffer {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (error) {
    throw new TypeError(`Not canonicalizable JSON: ${(error as Error).message}`);
  }
  if (text === undefined) throw new TypeError('Not canonicalizable JSON: undefined has no JSON form');
  return Buffer.from(text, 'utf8');
}
