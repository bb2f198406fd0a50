// Grant rules that need no I/O: whether a request's encryption context meets a grant's constraints.
// Must never do I/O; the service looks grants up and asks this module.
import type { EncryptionContext } from '../../../shared/crypto/index.ts';
import type { GrantConstraints } from '../../../shared/store/index.ts';

export /** Grant constraints hold when the request's context equals, or contains, the grant's pairs. */
function grantConstraintsHold(constraints: GrantConstraints | undefined, context: EncryptionContext | undefined): boolean {
  if (!constraints) return true;
  const actual = context ?? {};
  if (constraints.encryptionContextEquals) {
    const expected = constraints.encryptionContextEquals;
    const keys = Object.keys(actual);
    if (keys.length !== Object.keys(expected).length) return false;
    if (!keys.every((key) => Object.hasOwn(expected, key) && expected[key] === actual[key])) return false;
  }
  if (constraints.encryptionContextSubset) {
    const expected = constraints.encryptionContextSubset;
    if (!Object.keys(expected).every((key) => Object.hasOwn(actual, key) && actual[key] === expected[key])) return false;
  }
  return true;
}
