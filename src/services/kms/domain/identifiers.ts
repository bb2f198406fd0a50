// Key and alias identifiers: ARNs, key ids, alias names, and parsing what callers send.
// Must never do I/O; resolution against the store happens in the service.
export type KeyReference =
  | { kind: 'key'; keyId: string; accountId?: string; region?: string }
  | { kind: 'alias'; aliasName: string; accountId?: string; region?: string }
  | { kind: 'invalid'; raw: string };

const KEY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]*):(\d{12}):(key\/.+|alias\/.+)$/;
export const ALIAS_NAME_PATTERN = /^alias\/[a-zA-Z0-9/_-]+$/;
export const RESERVED_ALIAS_PREFIX = 'alias/aws/';

/** Parses what a caller sent as KeyId: key id, key ARN, alias name or alias ARN. */
export function parseKeyReference(raw: string): KeyReference {
  if (KEY_ID.test(raw)) return { kind: 'key', keyId: raw };
  if (raw.startsWith('alias/')) return { kind: 'alias', aliasName: raw };
  const match = ARN.exec(raw);
  if (!match) return { kind: 'invalid', raw };
  const [, region, accountId, resource] = match;
  if (resource.startsWith('key/')) {
    const keyId = resource.slice(4);
    return KEY_ID.test(keyId) ? { kind: 'key', keyId, accountId, region } : { kind: 'invalid', raw };
  }
  return { kind: 'alias', aliasName: resource, accountId, region };
}

export function keyArn(region: string, accountId: string, keyId: string): string {
  return `arn:aws:kms:${region}:${accountId}:key/${keyId}`;
}

export function aliasArn(region: string, accountId: string, aliasName: string): string {
  return `arn:aws:kms:${region}:${accountId}:${aliasName}`;
}
