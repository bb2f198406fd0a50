// Seal migration: moves a stopped server's store from the software module to a PKCS#11 token or
// back. Every wrapped row is rewrapped under the target's new domain key and the switch commits in
// one transaction, so a crash leaves the store wholly on one module or the other. Customer keys do
// not change; only what wraps them does. Must never write a share or the root key to disk.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pkcs11CryptoModule, rewrapBatch, ROOT_CHECK_NAME, SoftwareCryptoModule, zeroize, type CryptoModule, type CryptoModuleKind,
  type DomainKeyRecord, type WrappedRecordCursor, type WrappedRecordReplacement } from '../../shared/crypto/index.ts';
import { HOME_DATABASE_FILE, SERVER_PID_FILE } from '../../shared/config.ts';
import { UserError } from '../../shared/errors.ts';
import { SqliteStore } from '../../shared/store/index.ts';
import {
  decodeShare, encodeShare, newSplitRootKey, parseShareScheme, shareSchemeValues, UnsealProgress,
  SHAMIR_SHARES_VALUE, SHAMIR_THRESHOLD_VALUE, type ShareScheme,
} from './domain/shares.ts';
import { unsealWithRootKey } from './root-key.ts';

export interface Pkcs11Target {
  libraryPath: string;
  tokenLabel: string;
  pin: string;
}

export interface SealMigrationOptions {
  /** The stopped server's home. */
  home: string;
  to: CryptoModuleKind;
  /** The token on the PKCS#11 side (source or target). */
  pkcs11: Pkcs11Target;
  /** Unseal shares of the software module, when it is the source. */
  sourceShares?: string[];
  /** Shares to split the new root key into, when the software module is the target. */
  targetScheme?: ShareScheme;
  /** Receives the new shares before the switch commits (they are needed the moment it has). */
  onNewShares?(shares: string[], threshold: number): void;
  onProgress?(rewrapped: number, total: number): void;
}

export interface SealMigrationResult {
  from: CryptoModuleKind;
  to: CryptoModuleKind;
  rewrapped: number;
  newShares: string[];
  /** Old token keys that could not be destroyed after the commit (harmless; delete them with the token's tools). */
  leftInToken: string[];
}

async function openSoftwareSource(store: SqliteStore, shares: string[] | undefined): Promise<SoftwareCryptoModule> {
  const module = new SoftwareCryptoModule(store);
  await module.load();
  const scheme = parseShareScheme({ threshold: await store.getModuleValue(SHAMIR_THRESHOLD_VALUE),
    shares: await store.getModuleValue(SHAMIR_SHARES_VALUE) });
  if (!scheme) {
    throw new UserError('InvalidConfiguration', 'This software module was not initialised with shares (a dev home?); it cannot be migrated.');
  }
  const { threshold } = scheme;
  if (!shares || shares.length < threshold) {
    throw new UserError('ValidationException', `The software module needs ${threshold} unseal shares (one per line on standard input, or --share).`);
  }
  const progress = new UnsealProgress();
  for (const text of shares) {
    const added = await progress.add(decodeShare(text, threshold), threshold);
    if (added.kind === 'duplicate') throw new UserError('DuplicateShareException', 'The same share was given twice.');
    if (added.kind === 'complete') {
      await unsealWithRootKey(module, added.rootKey, 'The shares do not rebuild the root key: at least one is wrong.');
      return module;
    }
  }
  throw new UserError('ValidationException', `The software module needs ${threshold} distinct unseal shares.`);
}

/** A live server on the same home would keep wrapping under the old module while we switch. */
function refuseLiveServer(home: string): void {
  const pidFile = join(home, SERVER_PID_FILE);
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  try {
    process.kill(pid, 0);
  } catch (error) {
    // ESRCH: no such process, a stale file from a crash. EPERM: alive, under another user.
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return;
  }
  throw new UserError('ServerRunning', `a trustplane server (pid ${pid}) is running on ${home}; stop it before migrating the seal.`);
}

export async function migrateSeal(options: SealMigrationOptions): Promise<SealMigrationResult> {
  const database = join(options.home, HOME_DATABASE_FILE);
  if (!existsSync(database)) throw new UserError('InvalidConfiguration', `no trustplane home at ${options.home}.`);
  refuseLiveServer(options.home);
  const store = SqliteStore.open(database);
  try {
    return await migrateStore(store, options);
  } finally {
    await store.close();
  }
}

async function migrateStore(store: SqliteStore, options: SealMigrationOptions): Promise<SealMigrationResult> {
  const { to } = options;
  const domainKeys = await store.listDomainKeys();
  const active = domainKeys.find((key) => key.state === 'active');
  if (!active) throw new UserError('NotInitializedException', 'The store has no active domain key: initialise it first.');
  const from = active.module;
  if (from === to) throw new UserError('ValidationException', `The store is already sealed with the ${to} module.`);
  if (domainKeys.some((key) => key.state === 'retiring')) {
    throw new UserError('ConflictException', 'A domain key rotation has not finished rewrapping; start the server, let it finish, then migrate.');
  }

  const token = new Pkcs11CryptoModule({ store, ...options.pkcs11 });
  let source: CryptoModule | undefined;
  let target: CryptoModule | undefined;
  let preparedTokenKey: string | undefined;
  const newShares: string[] = [];
  let newThreshold = 0;
  try {
    let targetKey: DomainKeyRecord;
    let values: Record<string, Buffer | undefined>;
    if (from === 'software') {
      source = await openSoftwareSource(store, options.sourceShares);
      await token.load();
      targetKey = await token.prepareMigrationTarget();
      preparedTokenKey = targetKey.id;
      target = token;
      values = { [ROOT_CHECK_NAME]: undefined, [SHAMIR_THRESHOLD_VALUE]: undefined, [SHAMIR_SHARES_VALUE]: undefined };
    } else {
      await token.open();
      if (token.status().sealed) throw new UserError('UnsealFailedException', `The PKCS#11 token did not unseal: ${token.status().sealedReason ?? 'unknown reason'}.`);
      source = token;
      const scheme = options.targetScheme ?? { shares: 5, threshold: 3 };
      const { rootKey, shares: split } = await newSplitRootKey(scheme);
      const software = new SoftwareCryptoModule(store);
      try {
        const prepared = software.prepareMigrationTarget(rootKey);
        targetKey = prepared.domainKey;
        values = { ...prepared.values, ...shareSchemeValues(scheme) };
        newShares.push(...split.map(encodeShare));
        newThreshold = scheme.threshold;
      } finally {
        zeroize(rootKey, ...split);
      }
      target = software;
    }

    const sourceKeyIds = domainKeys.filter((key) => key.module === from && key.state !== 'retired').map((key) => key.id);
    const total = [...(await store.countWrappedRecords()).entries()]
      .reduce((sum, [id, count]) => sum + (sourceKeyIds.includes(id) ? count : 0), 0);
    const replacements: WrappedRecordReplacement[] = [];
    let cursor: WrappedRecordCursor | undefined;
    do {
      // Read-only until the commit: the batch's replacements are collected, not written.
      const batch = await rewrapBatch({ store: { ...collectOnly(store), replaceWrappedRecords: async (items) => {
        replacements.push(...items);
        return items.length;
      } }, source, target, fromDomainKeyIds: sourceKeyIds, after: cursor, limit: 500 });
      if (batch.unreadable.length > 0) {
        throw new UserError('InvalidCiphertextException', `${batch.unreadable.length} stored record(s) do not unwrap; repair or delete them before migrating.`);
      }
      cursor = batch.next;
      options.onProgress?.(replacements.length, total);
    } while (cursor);

    if (newShares.length > 0) options.onNewShares?.(newShares, newThreshold);
    const retired = domainKeys.filter((key) => sourceKeyIds.includes(key.id))
      .map((key) => ({ ...key, wrapped: Buffer.alloc(0), state: 'retired' as const }));
    await store.migrateModule({ replacements, domainKeys: [...retired, targetKey], values });
    preparedTokenKey = undefined;
    // Committed: the token's old keys guard nothing any more. Failing to destroy one must not turn a
    // finished migration (whose new shares are the only way in) into a reported failure.
    const leftInToken: string[] = [];
    if (from === 'pkcs11') {
      for (const id of sourceKeyIds) await token.destroyDomainKeyObject(id).catch(() => leftInToken.push(id));
    }
    return { from, to, rewrapped: replacements.length, newShares, leftInToken };
  } finally {
    if (preparedTokenKey) await token.destroyDomainKeyObject(preparedTokenKey).catch(() => undefined);
    source?.seal();
    target?.seal();
    token.dispose();
  }
}

function collectOnly(store: SqliteStore) {
  return {
    listWrappedRecords: store.listWrappedRecords.bind(store),
    countWrappedRecords: store.countWrappedRecords.bind(store),
  };
}
