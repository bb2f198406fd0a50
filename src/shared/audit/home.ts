// Finds and opens a home's audit log read-only, for the CLI on a stopped (or running) server.
// Must never open the database for writing, nor create a home that is not there.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NoAuditLogError, SqliteAuditStore } from '../store/sqlite-audit.ts';
import { HOME_DATABASE_FILE } from '../config.ts';
import { auditErrors } from './errors.ts';

export { HOME_DATABASE_FILE };

export function openAuditLogReadOnly(home: string): SqliteAuditStore {
  if (!existsSync(home)) throw auditErrors.homeNotFound(`${home} does not exist; pass --home DIR or set TRUSTPLANE_HOME.`);
  if (!statSync(home).isDirectory()) throw auditErrors.homeNotFound(`${home} is not a directory; pass --home DIR or set TRUSTPLANE_HOME.`);
  const path = join(home, HOME_DATABASE_FILE);
  if (!existsSync(path)) throw auditErrors.homeNotFound(`${home} is not a trustplane home (no ${HOME_DATABASE_FILE}); has a server run there?`);
  try {
    return SqliteAuditStore.openReadOnly(path);
  } catch (error) {
    if (error instanceof NoAuditLogError) throw auditErrors.unavailable(`${path} has no audit log yet; start this version of the server on it once.`);
    throw auditErrors.unavailable(`cannot read ${path}: ${(error as Error).message}`);
  }
}
