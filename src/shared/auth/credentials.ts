// Access keys of principals: issuing them (secret wrapped under a domain key) and resolving
// a request's access key to its caller. Must never store or log a secret in clear.
import { Keyring, randomBytes, zeroize } from '../crypto/index.ts';
import type { PrincipalKind, PrincipalRecord, Store } from '../store/index.ts';
import { deriveSigningKey, verifySigV4, type SignedHttpRequest, type SigV4Scope } from './sigv4.ts';
import { UserError } from '../errors.ts';

/** Who is calling: what every service authorises against. */
export interface Caller {
  principalArn: string;
  accountId: string;
  kind: PrincipalKind;
  accessKeyId: string;
  sourceIp?: string;
}

export interface IssuedAccessKey {
  accessKeyId: string;
  secretAccessKey: string;
}

const ACCESS_KEY_SECRET_PURPOSE = 'access-key';
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function newAccessKeyId(): string {
  const bytes = randomBytes(16);
  return `AKTP${Array.from(bytes, (byte) => BASE32[byte % 32]).join('')}`;
}

interface CachedSigningKey {
  key: Buffer;
  principal: PrincipalRecord;
}

const MAX_CACHED_SIGNING_KEYS = 10_000;

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

  /** Issues an access key for a principal; the secret is returned once and stored only wrapped. */
  async issueAccessKey(principal: PrincipalRecord, options: { createPrincipal: boolean }): Promise<IssuedAccessKey> {
    const accessKeyId = newAccessKeyId();
    const secretAccessKey = randomBytes(30).toString('base64').replace(/\+/g, 'A').replace(/\//g, 'B');
    const secretBytes = Buffer.from(secretAccessKey, 'utf8');
    try {
      const secret = await this.#keyring.wrapSecret(ACCESS_KEY_SECRET_PURPOSE, accessKeyId, secretBytes);
      const record = { accessKeyId, principalArn: principal.arn, secret, status: 'Active' as const, createdAt: new Date() };
      if (!options.createPrincipal) throw new Error('adding keys to an existing principal arrives with identity management');
      await this.#store.createPrincipal(principal, record);
    } finally {
      zeroize(secretBytes);
    }
    return { accessKeyId, secretAccessKey };
  }

  /** Authenticates a SigV4-signed request and returns the caller. */
  async authenticate(request: SignedHttpRequest, service: string, now = new Date()): Promise<Caller> {
    let principal: PrincipalRecord | undefined;
    const verified = await verifySigV4(request, {
      service, now,
      signingKeyFor: async (scope) => {
        const entry = await this.#signingKeyFor(scope);
        principal = entry?.principal;
        return entry?.key;
      },
    });
    if (verified.securityToken !== undefined) {
      // Temporary credentials arrive with identity management; until then a token is never valid.
      throw new UserError('UnrecognizedClientException', 'The security token included in the request is invalid.');
    }
    if (!principal) throw new UserError('UnrecognizedClientException', 'The security token included in the request is invalid.');
    return { principalArn: principal.arn, accountId: principal.accountId, kind: principal.kind,
      accessKeyId: verified.scope.accessKeyId };
  }

  async #signingKeyFor(scope: SigV4Scope): Promise<CachedSigningKey | undefined> {
    const accessKey = await this.#store.getAccessKey(scope.accessKeyId);
    if (!accessKey || accessKey.status !== 'Active') return undefined;
    const cacheKey = `${scope.accessKeyId}/${accessKey.createdAt.getTime()}/${scope.dateStamp}/${scope.region}/${scope.service}`;
    const cached = this.#signingKeys.get(cacheKey);
    if (cached) return cached;
    const principal = await this.#store.getPrincipal(accessKey.principalArn);
    if (!principal) return undefined;
    const secret = await this.#keyring.unsafeUnwrapSecret(ACCESS_KEY_SECRET_PURPOSE, scope.accessKeyId, accessKey.secret);
    try {
      const entry = { key: deriveSigningKey(secret, scope), principal };
      if (this.#signingKeys.size >= MAX_CACHED_SIGNING_KEYS) this.#forgetAll();
      this.#signingKeys.set(cacheKey, entry);
      return entry;
    } finally {
      zeroize(secret);
    }
  }
}
