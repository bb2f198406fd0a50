// Fleet use cases: host classes (a tree per account), which keys each class may hold, and join
// tokens hosts enrol with. Every change lands in the fleet change feed, which agents follow.
// Must never return a join token except once, when it is made; only its hash is stored.
import type { Authorizer, Caller } from '../../shared/auth/index.ts';
import { randomBytes, sha256 } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { StoreConflictError, StoreDuplicateError } from '../../shared/store/index.ts';
import type { FleetChange, HostClassRecord, SqliteFleetStore } from '../../shared/store/sqlite-fleet.ts';
import type { KeyService } from '../kms/index.ts';
import { classArn, JOIN_TOKEN_PREFIX, parseClassName } from './domain/names.ts';

export const DEFAULT_JOIN_TOKEN_TTL_SECONDS = 3600;
export const MAX_JOIN_TOKEN_TTL_SECONDS = 30 * 24 * 3600;

export interface FleetServiceOptions {
  store: SqliteFleetStore;
  keys: KeyService;
  authorizer: Authorizer;
  region: string;
  logger: Logger;
  now?: () => Date;
}

const notFound = (message: string) => new UserError('NotFoundException', message, 404);

export function joinTokenHash(token: string): Buffer {
  return sha256(token);
}

export class FleetService {
  readonly #options: FleetServiceOptions;
  readonly #now: () => Date;

  constructor(options: FleetServiceOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  async #require(caller: Caller, action: string, className = '*'): Promise<void> {
    await this.#options.authorizer.require(caller, { action, resource: classArn(this.#options.region, caller.accountId, className),
      resourceAccountId: caller.accountId });
  }

  async #existingClass(caller: Caller, name: string): Promise<HostClassRecord> {
    const found = await this.#options.store.getClass(caller.accountId, parseClassName(name).name);
    if (!found) throw notFound(`Class ${name} does not exist.`);
    return found;
  }

  async createClass(caller: Caller, rawName: string, rawParent?: string): Promise<HostClassRecord> {
    const { name, parent } = parseClassName(rawName, rawParent);
    await this.#require(caller, 'fleet:CreateClass', name);
    try {
      await this.#options.store.createClass(caller.accountId, name, parent, this.#now());
    } catch (error) {
      if (error instanceof StoreDuplicateError) throw new UserError('AlreadyExistsException', `Class ${name} already exists.`, 409);
      if (error instanceof StoreConflictError) throw notFound(`Parent class ${parent} does not exist; create it first.`);
      throw error;
    }
    return (await this.#options.store.getClass(caller.accountId, name)) as HostClassRecord;
  }

  async listClasses(caller: Caller): Promise<Array<HostClassRecord & { entitledKeyIds: string[] }>> {
    await this.#require(caller, 'fleet:ListClasses');
    const classes = await this.#options.store.listClasses(caller.accountId);
    return Promise.all(classes.map(async (record) => ({ ...record,
      entitledKeyIds: await this.#options.store.entitledKeyIds(caller.accountId, record.name) })));
  }

  async deleteClass(caller: Caller, rawName: string): Promise<void> {
    const { name } = parseClassName(rawName);
    await this.#require(caller, 'fleet:DeleteClass', name);
    try {
      if (!(await this.#options.store.deleteClass(caller.accountId, name, this.#now()))) throw notFound(`Class ${name} does not exist.`);
    } catch (error) {
      if (error instanceof StoreConflictError) throw new UserError('ConflictException', `Class ${name} has child classes; delete them first.`, 409);
      throw error;
    }
  }

  /** Grants a key (id, ARN or alias) to a class and so to every class below it. */
  async grantKey(caller: Caller, className: string, key: string): Promise<{ keyId: string; changed: boolean }> {
    const found = await this.#existingClass(caller, className);
    await this.#require(caller, 'fleet:GrantKey', found.name);
    const keyRecord = await this.#options.keys.describeKey(caller, key);
    const changed = await this.#options.store.grantKey(caller.accountId, found.name, keyRecord.keyId, this.#now());
    return { keyId: keyRecord.keyId, changed };
  }

  async revokeKey(caller: Caller, className: string, key: string): Promise<{ keyId: string; changed: boolean }> {
    const found = await this.#existingClass(caller, className);
    await this.#require(caller, 'fleet:RevokeKey', found.name);
    const keyRecord = await this.#options.keys.describeKey(caller, key);
    const changed = await this.#options.store.revokeKey(caller.accountId, found.name, keyRecord.keyId, this.#now());
    if (!changed) throw notFound(`Class ${found.name} holds no grant of key ${keyRecord.keyId}.`);
    return { keyId: keyRecord.keyId, changed };
  }

  /** A token hosts enrol with, naming their classes; single-use unless `uses` says otherwise. */
  async createJoinToken(caller: Caller, classNames: string[], uses = 1, ttlSeconds = DEFAULT_JOIN_TOKEN_TTL_SECONDS) {
    if (classNames.length === 0) throw new UserError('ValidationException', 'A join token names at least one class.');
    const classes = [...new Set(await Promise.all(classNames.map(async (name) => (await this.#existingClass(caller, name)).name)))];
    for (const name of classes) await this.#require(caller, 'fleet:CreateJoinToken', name);
    const now = this.#now();
    const token = `${JOIN_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
    await this.#options.store.createJoinToken({ tokenHash: joinTokenHash(token), accountId: caller.accountId, classes, usesLeft: uses,
      expiresAt, createdAt: now, createdBy: caller.principalArn });
    this.#options.logger.info({ classes, uses, expiresAt }, 'join token created');
    return { token, expiresAt, classes, uses };
  }

  async changesSince(caller: Caller, revision: number, limit: number): Promise<FleetChange[]> {
    await this.#require(caller, 'fleet:ListChanges');
    return this.#options.store.changesSince(caller.accountId, revision, limit);
  }
}
