// Access keys and session credentials of principals: issuing them (secrets wrapped under a
// domain key, session tokens kept only as hashes) and resolving a signed request to its caller.
// Must never store or log a secret or token in clear, nor accept an expired session.
import { constantTimeEqual, Keyring, randomBytes, sha256, zeroize } from '../crypto/index.ts';
import { SECRET_PURPOSES, type AccessKeyRecord, type PrincipalKind, type PrincipalRecord, type Store } from '../store/index.ts';
import { deriveSigningKey, verifySigV4, type SignedHttpRequest, type SigV4Scope } from './sigv4.ts';
import { UserError } from '../errors.ts';

export type CallerKind = PrincipalKind | 'assumed-role';

/** Who is calling: what every service authorises against. */
export interface Caller {
  /** The ARN policies name: a user, role session (arn:aws:sts::…:assumed-role/R/S), root or host. */
  principalArn: string;
  accountId: string;
  kind: CallerKind;
  accessKeyId: string;
  /** The stored principal whose identity policies apply (the role, for a role session). */
  identityArn: string;
  tags: Record<string, string>;
  sourceIp?: string;
  sessionExpiresAt?: Date;
  /** The SigV4 service name the request was signed for. */
  signingService: string;
  /** Authorisation decisions taken for this request, for its audit record. */
  decisions?: Array<{ decision: string; decidedBy?: string; action: string; resource: string }>;
}

export interface IssuedAccessKey {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface IssuedSession extends IssuedAccessKey {
  sessionToken: string;
  expiresAt: Date;
}

const ACCESS_KEY_SECRET_PURPOSE = SECRET_PURPOSES.accessKey;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
export const MAX_ACTIVE_ACCESS_KEYS = 2;

function newKeyId(prefix: string): string {
  const bytes = randomBytes(16);
  return `${prefix}${Array.from(bytes, (byte) => BASE32[byte % 32]).join('')}`;
}

function newSecret(): string {
  return randomBytes(30).toString('base64').replace(/\+/g, 'A').replace(/\//g, 'B');
}

const invalidToken = () => new UserError('UnrecognizedClientException', 'The security token included in the request is invalid.');

interface CachedSigningKey {
  key: Buffer;
  accessKey: AccessKeyRecord;
  principal: PrincipalRecord;
}

const MAX_CACHED_SIGNING_KEYS = 10_000;

export function accountArn(accountId: string): string {
  return `arn:aws:iam::${accountId}:account`;
}

export function rootArn(accountId: string): string {
  return `arn:aws:iam::${accountId}:root`;
}

export function userArn(accountId: string, name: string): string {
  return `arn:aws:iam::${accountId}:user/${name}`;
}

export function roleArn(accountId: string, name: string): string {
  return `arn:aws:iam::${accountId}:role/${name}`;
}

export function assumedRoleArn(accountId: string, roleName: string, sessionName: string): string {
  return `arn:aws:sts::${accountId}:assumed-role/${roleName}/${sessionName}`;
}

export class CredentialDirectory {
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #signingKeys = new Map<string, CachedSigningKey>();

  constructor(store: Store, keyring: Keyring) {
    this.#store = store;
    this.#keyring = keyring;
    keyring.module.onSeal(() => this.#forgetAll());
  }

  #forgetAll(): void {
    for (const entry of this.#signingKeys.values()) zeroize(entry.key);
    this.#signingKeys.clear();
  }

  /** Drops cached signing keys of one access key (deactivated or deleted). */
  forgetAccessKey(accessKeyId: string): void {
    for (const [cacheKey, entry] of this.#signingKeys) {
      if (cacheKey.startsWith(`${accessKeyId}/`)) {
        zeroize(entry.key);
        this.#signingKeys.delete(cacheKey);
      }
    }
  }

  /** Makes a new long-term access key for a principal, not yet stored; the secret is returned once. */
  newAccessKey(principalArn: string): Promise<{ record: AccessKeyRecord; issued: IssuedAccessKey }> {
    return this.#newKey(principalArn, 'AKTP');
  }

  /** Issues temporary credentials for a role session; only the token's hash is stored. */
  async issueSession(roleArn: string, sessionName: string, expiresAt: Date): Promise<IssuedSession> {
    const { record, issued } = await this.#newKey(roleArn, 'ASTP');
    const sessionToken = `TPST${randomBytes(48).toString('base64url')}`;
    await this.#store.addAccessKey({ ...record, session: { tokenHash: sha256(sessionToken), name: sessionName, expiresAt } },
      MAX_ACTIVE_ACCESS_KEYS);
    return { ...issued, sessionToken, expiresAt };
  }

  /** A new key id with `prefix` (AKTP long-term, ASTP session) and secret, the secret wrapped and its clear bytes zeroized. */
  async #newKey(principalArn: string, prefix: string): Promise<{ record: AccessKeyRecord; issued: IssuedAccessKey }> {
    const accessKeyId = newKeyId(prefix);
    const secretAccessKey = newSecret();
    const secretBytes = Buffer.from(secretAccessKey, 'utf8');
    try {
      const secret = await this.#keyring.wrapSecret(ACCESS_KEY_SECRET_PURPOSE, accessKeyId, secretBytes);
      return { record: { accessKeyId, principalArn, secret, status: 'Active', createdAt: new Date() },
        issued: { accessKeyId, secretAccessKey } };
    } finally {
      zeroize(secretBytes);
    }
  }

  /** Authenticates a SigV4-signed request and returns the caller. */
  async authenticate(request: SignedHttpRequest, services: readonly string[],
    options: { requiredSignedHeaders?: readonly string[]; now?: Date; onVerified?: (signature: string) => void } = {}): Promise<Caller> {
    const now = options.now ?? new Date();
    let entry: CachedSigningKey | undefined;
    const verified = await verifySigV4(request, {
      services, now, requiredSignedHeaders: options.requiredSignedHeaders,
      signingKeyFor: async (scope) => {
        entry = await this.#signingKeyFor(scope);
        return entry?.key;
      },
    });
    if (!entry) throw invalidToken();
    options.onVerified?.(verified.signature);
    const { accessKey, principal } = entry;
    const base = { accountId: principal.accountId, accessKeyId: accessKey.accessKeyId, tags: principal.tags ?? {},
      signingService: verified.scope.service };
    if (!accessKey.session) {
      if (verified.securityToken !== undefined) throw invalidToken();
      return { ...base, principalArn: principal.arn, identityArn: principal.arn, kind: principal.kind };
    }
    if (verified.securityToken === undefined
      || !constantTimeEqual(sha256(verified.securityToken), accessKey.session.tokenHash)) throw invalidToken();
    if (accessKey.session.expiresAt.getTime() <= now.getTime()) {
      throw new UserError('ExpiredTokenException', 'The security token included in the request is expired');
    }
    return { ...base, principalArn: assumedRoleArn(principal.accountId, principal.name, accessKey.session.name),
      identityArn: principal.arn, kind: 'assumed-role', sessionExpiresAt: accessKey.session.expiresAt };
  }

  async #signingKeyFor(scope: SigV4Scope): Promise<CachedSigningKey | undefined> {
    // Read on every request so deactivation and deletion take effect at once.
    const accessKey = await this.#store.getAccessKey(scope.accessKeyId);
    if (!accessKey || accessKey.status !== 'Active') return undefined;
    const cacheKey = `${scope.accessKeyId}/${accessKey.createdAt.getTime()}/${scope.dateStamp}/${scope.region}/${scope.service}`;
    const cached = this.#signingKeys.get(cacheKey);
    if (cached) {
      // The hot path: no reordering and no copy. Entries are per day of scope, so first-in first-out
      // eviction retires yesterday's keys first anyway; the access key is the one just read.
      cached.accessKey = accessKey;
      return cached;
    }
    const principal = await this.#store.getPrincipal(accessKey.principalArn);
    if (!principal) return undefined;
    const secret = await this.#keyring.unsafeUnwrapSecret(ACCESS_KEY_SECRET_PURPOSE, scope.accessKeyId, accessKey.secret);
    try {
      const entry = { key: deriveSigningKey(secret, scope), accessKey, principal };
      if (this.#signingKeys.size >= MAX_CACHED_SIGNING_KEYS) {
        // Evict the oldest entry only: a flood of odd scopes must not flush every client's keys.
        const [oldestKey, oldest] = this.#signingKeys.entries().next().value as [string, CachedSigningKey];
        zeroize(oldest.key);
        this.#signingKeys.delete(oldestKey);
      }
      this.#signingKeys.set(cacheKey, entry);
      return entry;
    } finally {
      zeroize(secret);
    }
  }
}
