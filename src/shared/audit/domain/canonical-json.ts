// Canonical JSON (RFC 8785, JCS, for the values we use): sorted keys, no whitespace, ECMAScript
// number and string forms. Must never accept a value with two encodings (NaN, Infinity, undefined in arrays).

export type CanonicalValue = string | number | boolean | null | readonly CanonicalValue[]
  | { readonly [name: string]: CanonicalValue | undefined };

/**
 * One byte string per value: object members sorted by UTF-16 code units (JCS §3.2.3), members
 * whose value is undefined left out, numbers and strings as JSON.stringify writes them (which is
 * what JCS specifies). The same value always encodes to the same text, in any process.
 */
export function canonicalJson(value: CanonicalValue): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError('canonical JSON has no encoding for NaN or Infinity');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${(value as readonly CanonicalValue[]).map((item) => {
      if (item === undefined) throw new RangeError('canonical JSON has no encoding for undefined in an array');
      return canonicalJson(item);
    }).join(',')}]`;
  }
  const object = value as { readonly [name: string]: CanonicalValue | undefined };
  const members: string[] = [];
  for (const name of Object.keys(object).sort()) {
    const member = object[name];
    if (member !== undefined) members.push(`${JSON.stringify(name)}:${canonicalJson(member)}`);
  }
  return `{${members.join(',')}}`;
}
