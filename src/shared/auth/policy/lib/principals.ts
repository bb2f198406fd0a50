// Principal and NotPrincipal: validating the AWS forms we accept and matching a caller against them.
// Must never accept a wildcard inside a principal ARN, nor let a role ARN match anything but the role and its sessions.
import { PolicyInputError } from '../errors.ts';
import type { ParsedPrincipal, PrincipalMatch, RequestPrincipal } from './types.ts';

const ACCOUNT_ID = /^\d{12}$/;
const PRINCIPAL_ARN = /^arn:(aws[a-z-]*):(iam|sts)::(\d{12}):(.+)$/;
const PATH_AND_NAME = /^(?:[\w+=,.@-]+\/)*[\w+=,.@-]+$/;
const SESSION = /^assumed-role\/([\w+=,.@-]+)\/([\w+=,.@-]+)$/;

/** Why an entry of {"AWS": …} is not acceptable, or undefined when it is. */
export function principalEntryProblem(entry: string): string | undefined {
  if (entry === '*' || ACCOUNT_ID.test(entry)) return undefined;
  if (entry.includes('*') || entry.includes('?')) {
    // AWS refuses partial wildcards here; the ARN operators on aws:PrincipalArn do that job explicitly.
    return `wildcards are not allowed in principal ${JSON.stringify(entry)}; use ArnLike on aws:PrincipalArn instead`;
  }
  const m = PRINCIPAL_ARN.exec(entry);
  if (m === null) return `principal ${JSON.stringify(entry)} is not "*", a 12-digit account id or an IAM principal ARN`;
  const [, , service, , resource] = m as unknown as [string, string, string, string, string];
  if (service === 'sts') {
    return SESSION.test(resource) ? undefined : `principal ${JSON.stringify(entry)} is not an assumed-role session ARN`;
  }
  if (resource === 'root') return undefined;
  const slash = resource.indexOf('/');
  const type = slash < 0 ? resource : resource.slice(0, slash);
  if (type !== 'user' && type !== 'role' && type !== 'host') {
    return `principal ${JSON.stringify(entry)} names an unsupported IAM resource type ${JSON.stringify(type)} (use root, user, role or host)`;
  }
  return PATH_AND_NAME.test(resource.slice(slash + 1)) ? undefined : `principal ${JSON.stringify(entry)} has an invalid name`;
}

export interface PrincipalMatcher {
  readonly any: boolean;
  /** Accounts named by root ARN or bare id: delegation to the account. */
  readonly accounts: ReadonlySet<string>;
  /** Exact principal ARNs: users, roles, hosts, sessions. */
  readonly arns: ReadonlySet<string>;
  /** `${account}:${roleName}` of every role ARN named, so the role's sessions match (their ARN drops the path). */
  readonly roles: ReadonlySet<string>;
}

export function compilePrincipal(parsed: ParsedPrincipal): PrincipalMatcher {
  const accounts = new Set<string>();
  const arns = new Set<string>();
  const roles = new Set<string>();
  let any = parsed.any;
  for (const entry of parsed.aws) {
    if (entry === '*') { any = true; continue; }
    if (ACCOUNT_ID.test(entry)) { accounts.add(entry); continue; }
    const m = PRINCIPAL_ARN.exec(entry)!;
    const account = m[3]!;
    const resource = m[4]!;
    if (resource === 'root') { accounts.add(account); continue; }
    arns.add(entry);
    if (m[2] === 'iam' && resource.startsWith('role/')) roles.add(`${account}:${resource.slice(resource.lastIndexOf('/') + 1)}`);
  }
  // Service principals are accepted for compatibility with AWS-shaped documents; no trustplane caller is one.
  return { any, accounts, arns, roles };
}

/** One identity a caller acts as: itself, and (for NotPrincipal) its account and role. */
export interface CallerIdentity {
  readonly arn: string;
  readonly accountId: string;
  readonly roleKey?: string;
}

export interface Caller {
  readonly self: CallerIdentity;
  /**
   * The identities AWS checks a NotPrincipal against, outermost first: the account, then (for a session) the
   * role, then the caller. The caller escapes a NotPrincipal only when every one of them is listed.
   */
  readonly chain: readonly CallerIdentity[];
}

// Callers recur far more often than they change, and each needs a regex over its ARN: remember recent ones.
// Keyed by value (not by object, as each request brings a new principal object); bounded, then simply reset.
const callers = new Map<string, Caller>();
const MAX_CACHED_CALLERS = 10_000;

export function describeCaller(principal: RequestPrincipal): Caller {
  const key = `${principal.kind} ${principal.accountId} ${principal.arn}`;
  const cached = callers.get(key);
  if (cached !== undefined) return cached;
  const caller = buildCaller(principal);
  if (callers.size >= MAX_CACHED_CALLERS) callers.clear();
  callers.set(key, caller);
  return caller;
}

function buildCaller(principal: RequestPrincipal): Caller {
  const { arn, accountId, kind } = principal;
  const m = PRINCIPAL_ARN.exec(arn);
  // A principal whose ARN disagrees with its account or kind would be matched against the wrong statements.
  if (m === null || m[3] !== accountId) throw new PolicyInputError(`principal ARN ${arn} does not belong to account ${accountId}`);
  const [, partition, service, , resource] = m as unknown as [string, string, string, string, string];
  const root: CallerIdentity = { arn: `arn:${partition}:iam::${accountId}:root`, accountId };
  const expect = (ok: boolean) => { if (!ok) throw new PolicyInputError(`principal ARN ${arn} is not of kind ${kind}`); };
  switch (kind) {
    case 'root':
      expect(service === 'iam' && resource === 'root');
      return { self: root, chain: [root] };
    case 'user':
    case 'host': {
      expect(service === 'iam' && resource.startsWith(`${kind}/`));
      const self: CallerIdentity = { arn, accountId };
      return { self, chain: [root, self] };
    }
    case 'role': {
      expect(service === 'iam' && resource.startsWith('role/'));
      const self: CallerIdentity = { arn, accountId, roleKey: `${accountId}:${resource.slice(resource.lastIndexOf('/') + 1)}` };
      return { self, chain: [root, self] };
    }
    case 'assumed-role': {
      const session = SESSION.exec(resource);
      expect(service === 'sts' && session !== null);
      const roleName = session![1]!;
      const roleKey = `${accountId}:${roleName}`;
      const role: CallerIdentity = { arn: `arn:${partition}:iam::${accountId}:role/${roleName}`, accountId, roleKey };
      const self: CallerIdentity = { arn, accountId, roleKey };
      return { self, chain: [root, role, self] };
    }
    default:
      throw new PolicyInputError(`unknown principal kind ${String(kind)}`);
  }
}

export function matchPrincipal(matcher: PrincipalMatcher, identity: CallerIdentity): PrincipalMatch | undefined {
  if (matcher.any || matcher.arns.has(identity.arn)) return 'explicit';
  if (identity.roleKey !== undefined && matcher.roles.has(identity.roleKey)) return 'explicit';
  if (matcher.accounts.has(identity.accountId)) return 'account';
  return undefined;
}

/** NotPrincipal: the caller is excluded only when its account, role (for a session) and itself are all listed. */
export function excludedByNotPrincipal(matcher: PrincipalMatcher, caller: Caller): boolean {
  for (const identity of caller.chain) if (matchPrincipal(matcher, identity) === undefined) return false;
  return true;
}
