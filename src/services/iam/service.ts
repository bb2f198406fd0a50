// Identity use cases: accounts, users, roles, their policies and access keys, and role sessions.
// Must never return a stored secret: secrets are shown once, when issued.
import type { AccessRequest, Authorizer, Caller, CredentialDirectory, IssuedAccessKey } from '../../shared/auth/index.ts';
import { assumedRoleArn, MAX_ACTIVE_ACCESS_KEYS } from '../../shared/auth/index.ts';
import { randomBytes } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  StoreDuplicateError, StoreLimitError, type AccountRecord, type PrincipalKind, type PrincipalRecord,
  type Store,
} from '../../shared/store/index.ts';
import {
  ACCOUNT_NAME, accountArn, checkName, DEFAULT_ROLE_MAX_SESSION_SECONDS, parseRoleArn, POLICY_NAME, PRINCIPAL_NAME,
  roleArn, rootArn, SESSION_NAME, userArn,
} from './domain/names.ts';

/** Builds the authorisation question for a resource another service owns (a key, say). */
export type ResourceQuestion = (principal: Caller, action: string, resource: string,
  context?: Record<string, string>) => Promise<AccessRequest | undefined>;

export interface IdentityServiceOptions {
  store: Store;
  /** Services that own resources with policies (the key service) answer for their ARNs. */
  resourceQuestions?: ResourceQuestion[];
  credentials: CredentialDirectory;
  authorizer: Authorizer;
  logger: Logger;
  now?: () => Date;
}

/** A trust policy that trusts nobody, for a role that does not exist (same answer as an untrusted caller). */
const NO_TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole"}]}';

const noSuchEntity = (message: string) => new UserError('NoSuchEntityException', message, 404);
const entityExists = (message: string) => new UserError('EntityAlreadyExistsException', message, 409);

/** The store's active-key limit, in IAM's words. */
async function withKeyQuota<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (error) {
    if (error instanceof StoreLimitError) {
      throw new UserError('LimitExceededException', `Cannot exceed quota for AccessKeysPerUser: ${MAX_ACTIVE_ACCESS_KEYS}`);
    }
    throw error;
  }
}

/** A name already taken (account, user, role), in IAM's words. */
async function withUniqueName<T>(write: Promise<T>, message: string): Promise<T> {
  try {
    return await write;
  } catch (error) {
    if (error instanceof StoreDuplicateError) throw entityExists(message);
    throw error;
  }
}

/** A random 12-digit account id that does not start with 0. */
export function newAccountId(): string {
  const digits = Array.from(randomBytes(12), (byte) => String(byte % 10)).join('');
  return digits.startsWith('0') ? `1${digits.slice(1)}` : digits;
}

export function describePrincipal(principal: PrincipalRecord) {
  return { Name: principal.name, Arn: principal.arn, AccountId: principal.accountId, Type: principal.kind,
    CreateDate: principal.createdAt, Tags: Object.entries(principal.tags ?? {}).map(([Key, Value]) => ({ Key, Value })),
    AssumeRolePolicyDocument: principal.trustPolicy, MaxSessionDuration: principal.maxSessionSeconds };
}

export class IdentityService {
  readonly #store: Store;
  readonly #credentials: CredentialDirectory;
  readonly #authorizer: Authorizer;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #resourceQuestions: ResourceQuestion[];

  constructor(options: IdentityServiceOptions) {
    this.#resourceQuestions = options.resourceQuestions ?? [];
    this.#store = options.store;
    this.#credentials = options.credentials;
    this.#authorizer = options.authorizer;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Creates an account with its root principal and one access key (the only copy of the secret).
   * `beforeCommit` sees the credentials before they are stored, so a caller that must persist
   * them (the dev credentials file) can do so first and never lose them.
   */
  async #createAccount(name: string, management: boolean, accountId = newAccountId(),
    beforeCommit?: (credentials: IssuedAccessKey) => void) {
    checkName(name, ACCOUNT_NAME, 'accountName');
    const account: AccountRecord = { accountId, name, createdAt: this.#now(), management };
    const root: PrincipalRecord = { arn: rootArn(accountId), accountId, kind: 'root', name: 'root', createdAt: account.createdAt };
    const { record, issued } = await this.#credentials.newAccessKey(root.arn);
    beforeCommit?.(issued);
    await withUniqueName(this.#store.createAccount(account, root, record), `An account named ${name} already exists.`);
    this.#logger.info({ accountId, name }, 'account created');
    return { account, credentials: issued };
  }

  /** Whether this is the management account (whose principals may create accounts and operate the server). */
  async isManagementAccount(accountId: string): Promise<boolean> {
    return (await this.#store.getAccount(accountId))?.management === true;
  }

  /** Server start-up: the management account exists, created with this id on first start. */
  async ensureManagementAccount(accountId: string, beforeCommit?: (credentials: IssuedAccessKey) => void): Promise<IssuedAccessKey | undefined> {
    if (await this.#store.getAccount(accountId)) return undefined;
    return (await this.#createAccount('default', true, accountId, beforeCommit)).credentials;
  }

  async createAccount(caller: Caller, name: string) {
    await this.#authorizer.require(caller, { action: 'tp:CreateAccount', resource: accountArn(caller.accountId), resourceAccountId: caller.accountId });
    if (!(await this.isManagementAccount(caller.accountId))) {
      throw new UserError('AccessDeniedException', 'Only principals of the management account may create accounts.');
    }
    const { account, credentials } = await this.#createAccount(name, false);
    return { AccountId: account.accountId, AccountName: account.name, AccessKeyId: credentials.accessKeyId,
      SecretAccessKey: credentials.secretAccessKey };
  }

  async listAccounts(caller: Caller, limit: number, marker?: string) {
    await this.#authorizer.require(caller, { action: 'tp:ListAccounts', resource: accountArn(caller.accountId), resourceAccountId: caller.accountId });
    const callerAccount = await this.#store.getAccount(caller.accountId);
    if (!callerAccount?.management) {
      const own = callerAccount ? [callerAccount] : [];
      return { items: own, nextMarker: undefined };
    }
    return this.#store.listAccounts(limit, marker);
  }

  // ---- users and roles ----------------------------------------------------------------------

  #arnFor(kind: 'user' | 'role', accountId: string, name: string): string {
    return kind === 'user' ? userArn(accountId, name) : roleArn(accountId, name);
  }

  async #principal(caller: Caller, kind: 'user' | 'role', name: string, action: string): Promise<PrincipalRecord> {
    checkName(name, PRINCIPAL_NAME, kind === 'user' ? 'userName' : 'roleName');
    const arn = this.#arnFor(kind, caller.accountId, name);
    await this.#authorizer.require(caller, { action, resource: arn, resourceAccountId: caller.accountId });
    const principal = await this.#store.getPrincipal(arn);
    if (!principal) throw noSuchEntity(`The ${kind} with name ${name} cannot be found.`);
    return principal;
  }

  async createUser(caller: Caller, name: string, tags?: Record<string, string>): Promise<PrincipalRecord> {
    checkName(name, PRINCIPAL_NAME, 'userName');
    const arn = userArn(caller.accountId, name);
    await this.#authorizer.require(caller, { action: 'iam:CreateUser', resource: arn, resourceAccountId: caller.accountId });
    const principal: PrincipalRecord = { arn, accountId: caller.accountId, kind: 'user', name, createdAt: this.#now(), tags };
    await withUniqueName(this.#store.createPrincipal(principal), `User with name ${name} already exists.`);
    return principal;
  }

  async createRole(caller: Caller, input: { name: string; trustPolicy: string; maxSessionSeconds?: number; tags?: Record<string, string> }) {
    checkName(input.name, PRINCIPAL_NAME, 'roleName');
    this.#authorizer.engine.validate(input.trustPolicy, 'trust');
    const maxSessionSeconds = input.maxSessionSeconds ?? DEFAULT_ROLE_MAX_SESSION_SECONDS;
    const arn = roleArn(caller.accountId, input.name);
    await this.#authorizer.require(caller, { action: 'iam:CreateRole', resource: arn, resourceAccountId: caller.accountId });
    const principal: PrincipalRecord = { arn, accountId: caller.accountId, kind: 'role', name: input.name, createdAt: this.#now(),
      tags: input.tags, trustPolicy: input.trustPolicy, maxSessionSeconds };
    await withUniqueName(this.#store.createPrincipal(principal), `Role with name ${input.name} already exists.`);
    return principal;
  }

  async getPrincipal(caller: Caller, kind: 'user' | 'role', name: string): Promise<PrincipalRecord> {
    return this.#principal(caller, kind, name, kind === 'user' ? 'iam:GetUser' : 'iam:GetRole');
  }

  async listPrincipals(caller: Caller, kind: 'user' | 'role', limit: number, marker?: string) {
    await this.#authorizer.require(caller, { action: kind === 'user' ? 'iam:ListUsers' : 'iam:ListRoles',
      resource: this.#arnFor(kind, caller.accountId, '*'), resourceAccountId: caller.accountId });
    return this.#store.listPrincipals(caller.accountId, kind as PrincipalKind, limit, marker);
  }

  async deletePrincipal(caller: Caller, kind: 'user' | 'role', name: string): Promise<void> {
    const principal = await this.#principal(caller, kind, name, kind === 'user' ? 'iam:DeleteUser' : 'iam:DeleteRole');
    for (const key of await this.#store.listAccessKeys(principal.arn)) this.#credentials.forgetAccessKey(key.accessKeyId);
    await this.#store.deletePrincipal(principal.arn);
    this.#authorizer.forgetIdentity(principal.arn);
  }

  // ---- identity policies --------------------------------------------------------------------

  /** A principal of the caller's account, by ARN, once the caller may take this action on it. */
  async #accountPrincipal(caller: Caller, principalArn: string, action: string): Promise<PrincipalRecord> {
    await this.#authorizer.require(caller, { action, resource: principalArn, resourceAccountId: caller.accountId });
    const principal = await this.#store.getPrincipal(principalArn);
    if (!principal || principal.accountId !== caller.accountId) throw noSuchEntity(`The principal ${principalArn} cannot be found.`);
    return principal;
  }

  async #policyTarget(caller: Caller, principalArn: string, action: string): Promise<PrincipalRecord> {
    const principal = await this.#accountPrincipal(caller, principalArn, action);
    if (principal.kind === 'root') {
      throw new UserError('ValidationException', 'The account root has every permission in its account; attach policies to users and roles.');
    }
    return principal;
  }

  async putPrincipalPolicy(caller: Caller, principalArn: string, policyName: string, document: string): Promise<void> {
    checkName(policyName, POLICY_NAME, 'policyName');
    this.#authorizer.engine.validate(document, 'identity');
    const principal = await this.#policyTarget(caller, principalArn, 'iam:PutPrincipalPolicy');
    await this.#store.putPrincipalPolicy({ principalArn: principal.arn, policyName, document, updatedAt: this.#now() });
    this.#authorizer.forgetIdentity(principal.arn);
  }

  async getPrincipalPolicy(caller: Caller, principalArn: string, policyName: string) {
    const principal = await this.#policyTarget(caller, principalArn, 'iam:GetPrincipalPolicy');
    const policy = (await this.#store.listPrincipalPolicies(principal.arn)).find((entry) => entry.policyName === policyName);
    if (!policy) throw noSuchEntity(`The policy ${policyName} of ${principalArn} cannot be found.`);
    return policy;
  }

  async listPrincipalPolicies(caller: Caller, principalArn: string) {
    const principal = await this.#policyTarget(caller, principalArn, 'iam:ListPrincipalPolicies');
    return this.#store.listPrincipalPolicies(principal.arn);
  }

  async deletePrincipalPolicy(caller: Caller, principalArn: string, policyName: string): Promise<void> {
    const principal = await this.#policyTarget(caller, principalArn, 'iam:DeletePrincipalPolicy');
    if (!(await this.#store.deletePrincipalPolicy(principal.arn, policyName))) {
      throw noSuchEntity(`The policy ${policyName} of ${principalArn} cannot be found.`);
    }
    this.#authorizer.forgetIdentity(principal.arn);
  }

  async updateTrustPolicy(caller: Caller, roleName: string, document: string): Promise<void> {
    this.#authorizer.engine.validate(document, 'trust');
    const role = await this.#principal(caller, 'role', roleName, 'iam:UpdateAssumeRolePolicy');
    await this.#store.setTrustPolicy(role.arn, document);
  }

  // ---- access keys --------------------------------------------------------------------------

  /** The user named, or the caller itself (a user or the account root) when no name is given. */
  async #keyOwner(caller: Caller, userName: string | undefined, action: string): Promise<PrincipalRecord> {
    if (userName === undefined) {
      if (caller.kind !== 'user' && caller.kind !== 'root') {
        throw new UserError('ValidationException', 'UserName is required: role sessions and hosts have no long-term access keys.');
      }
      await this.#authorizer.require(caller, { action, resource: caller.identityArn, resourceAccountId: caller.accountId });
      const self = await this.#store.getPrincipal(caller.identityArn);
      if (!self) throw noSuchEntity('The calling principal cannot be found.');
      return self;
    }
    return this.#principal(caller, 'user', userName, action);
  }

  async createAccessKey(caller: Caller, userName?: string) {
    const owner = await this.#keyOwner(caller, userName, 'iam:CreateAccessKey');
    const { record, issued } = await this.#credentials.newAccessKey(owner.arn);
    await withKeyQuota(this.#store.addAccessKey(record, MAX_ACTIVE_ACCESS_KEYS));
    return { owner, record, issued };
  }

  async listAccessKeys(caller: Caller, userName?: string) {
    const owner = await this.#keyOwner(caller, userName, 'iam:ListAccessKeys');
    return { owner, keys: await this.#store.listAccessKeys(owner.arn) };
  }

  async #ownedKey(caller: Caller, accessKeyId: string, userName: string | undefined, action: string) {
    const owner = await this.#keyOwner(caller, userName, action);
    const key = await this.#store.getAccessKey(accessKeyId);
    if (!key || key.principalArn !== owner.arn || key.session) {
      throw noSuchEntity(`The Access Key with id ${accessKeyId} cannot be found.`);
    }
    return key;
  }

  async updateAccessKey(caller: Caller, accessKeyId: string, status: 'Active' | 'Inactive', userName?: string): Promise<void> {
    await this.#ownedKey(caller, accessKeyId, userName, 'iam:UpdateAccessKey');
    await withKeyQuota(this.#store.setAccessKeyStatus(accessKeyId, status, MAX_ACTIVE_ACCESS_KEYS));
    this.#credentials.forgetAccessKey(accessKeyId);
  }

  async deleteAccessKey(caller: Caller, accessKeyId: string, userName?: string): Promise<void> {
    await this.#ownedKey(caller, accessKeyId, userName, 'iam:DeleteAccessKey');
    await this.#store.deleteAccessKey(accessKeyId);
    this.#credentials.forgetAccessKey(accessKeyId);
  }

  // ---- simulation ---------------------------------------------------------------------------

  /** May this principal (of the caller's account) do this action on this resource, and what decided it? */
  async simulate(caller: Caller, input: { principalArn: string; action: string; resource: string;
    encryptionContext?: Record<string, string>; sourceIp?: string }) {
    const principal = await this.#accountPrincipal(caller, input.principalArn, 'iam:SimulatePrincipalPolicy');
    const subject: Caller = { principalArn: principal.arn, identityArn: principal.arn, accountId: principal.accountId, kind: principal.kind,
      accessKeyId: 'SIMULATION', tags: principal.tags ?? {}, sourceIp: input.sourceIp, signingService: 'simulation' };
    let request: AccessRequest | undefined;
    for (const question of this.#resourceQuestions) {
      request = await question(subject, input.action, input.resource, input.encryptionContext);
      if (request) break;
    }
    const resourceAccountId = /^arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):/.exec(input.resource)?.[1] ?? caller.accountId;
    return this.#authorizer.simulate(subject, request ?? { action: input.action, resource: input.resource, resourceAccountId });
  }

  /** Scheduled work: forget role sessions a day after they expired. */
  async runDueWork(): Promise<void> {
    // Kept a day so their callers hear ExpiredTokenException, not "unknown access key".
    await this.#store.deleteExpiredSessions(new Date(this.#now().getTime() - 24 * 60 * 60 * 1000));
  }

  // ---- role sessions ------------------------------------------------------------------------

  async assumeRole(caller: Caller, input: { roleArn: string; sessionName: string; durationSeconds?: number }) {
    checkName(input.sessionName, SESSION_NAME, 'roleSessionName');
    const target = parseRoleArn(input.roleArn);
    const role = await this.#store.getPrincipal(input.roleArn);
    // The trust policy is the role's resource policy: it decides, with the caller's identity policy.
    const decision = await this.#authorizer.decide(caller, { action: 'sts:AssumeRole', resource: input.roleArn,
      resourceAccountId: target.accountId, resourcePolicy: role?.trustPolicy ?? NO_TRUST, resourcePolicyKind: 'trust' });
    if (!role || role.kind !== 'role' || !decision.allowed) {
      throw new UserError('AccessDeniedException',
        `User: ${caller.principalArn} is not authorized to perform: sts:AssumeRole on resource: ${input.roleArn}`);
    }
    const maximum = role.maxSessionSeconds ?? DEFAULT_ROLE_MAX_SESSION_SECONDS;
    // The route bounds DurationSeconds (MIN_SESSION_SECONDS to MAX_SESSION_SECONDS) and a role's maximum (3600 and up).
    const duration = input.durationSeconds ?? Math.min(DEFAULT_ROLE_MAX_SESSION_SECONDS, maximum);
    if (duration > maximum) {
      throw new UserError('ValidationException', `The requested DurationSeconds exceeds the MaxSessionDuration set for this role (${maximum} seconds).`);
    }
    const expiresAt = new Date(this.#now().getTime() + duration * 1000);
    const session = await this.#credentials.issueSession(role.arn, input.sessionName, expiresAt);
    return { role, session, sessionArn: assumedRoleArn(role.accountId, role.name, input.sessionName) };
  }
}
