// The audit context of one request, carried through async calls so a store write can commit the
// request's audit record in its own transaction. Must never hold secrets: only what a record holds.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { AuditRecordDraft } from './domain/index.ts';

export interface RequestAuditScope {
  /** The record for this request as it stands now, with the given outcome. */
  draft(outcome: string): AuditRecordDraft;
  /** Set once a write transaction has committed this request's record. */
  recordedInTransaction: boolean;
}

export const auditRequestScope = new AsyncLocalStorage<RequestAuditScope>();

/** For the store's after-write hook: records the current request inside the open transaction, once. */
export function recordCurrentRequestInTransaction(record: (draft: AuditRecordDraft) => unknown): void {
  const scope = auditRequestScope.getStore();
  if (!scope || scope.recordedInTransaction) return;
  record(scope.draft('Success'));
  scope.recordedInTransaction = true;
}
