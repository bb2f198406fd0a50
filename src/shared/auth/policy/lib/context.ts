// Request contexts: the condition keys a KMS request carries, and the case-insensitive view evaluation reads.
// Must never read the clock, the network or the store: everything, including "now", is passed in.
import type { ConditionKeyValue, RequestContext, RequestPrincipal } from './types.ts';

/**
 * Values of one condition key supplied under names that differ only in case (possible for
 * kms:EncryptionContext:<key>, whose context keys are case-sensitive while condition key names are not).
 * Not a multi-valued key: conditions read it so that it can never help a caller (see conditions.ts).
 */
export class AmbiguousValues {
  constructor(readonly values: readonly string[]) {}
}

/** A normalised condition value: never undefined, never an empty array. */
export type KeyValue = string | number | boolean | readonly string[] | AmbiguousValues;

/** Condition keys by lower-cased name, as every condition and policy variable looks them up. */
export type KeyView = ReadonlyMap<string, KeyValue>;

/**
 * Lower-cases key names once per decision (every policy of it then shares the view). Not cached per object:
 * a WeakMap entry per request costs more than building the view again.
 * Missing, undefined and empty-array values are all "absent", which is how AWS treats an empty multi-valued key.
 * Two names that differ only in case become one AmbiguousValues, so neither spelling can hide the other.
 */
export function keyView(conditionKeys: RequestContext['conditionKeys']): KeyView {
  const view = new Map<string, KeyValue>();
  for (const name of Object.keys(conditionKeys)) {
    const value = normalise(conditionKeys[name]);
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    const existing = view.get(lower);
    view.set(lower, existing === undefined ? value : merge(existing, value));
  }
  return view;
}

function normalise(value: ConditionKeyValue): KeyValue | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value;
  if (typeof value === 'number' && !Number.isFinite(value)) return undefined;
  return value as KeyValue;
}

function merge(a: KeyValue, b: KeyValue): AmbiguousValues {
  const list = (v: KeyValue): readonly string[] =>
    v instanceof AmbiguousValues ? v.values : Array.isArray(v) ? v : [typeof v === 'string' ? v : String(v)];
  return new AmbiguousValues([...list(a), ...list(b)]);
}

export interface KmsConditionInput {
  readonly principal: RequestPrincipal;
  /** The request's time; required because this module never reads the clock. */
  readonly now: Date;
  /** The request's encryption context; when absent, no kms:EncryptionContext* key exists (as in AWS). */
  readonly encryptionContext?: Readonly<Record<string, string>>;
  /** Defaults to the principal's account. */
  readonly callerAccount?: string;
  readonly viaService?: string;
  /** The alias the request named the key by, e.g. `alias/app`. */
  readonly requestAlias?: string;
  readonly keySpec?: string;
  readonly keyUsage?: string;
  readonly sourceIp?: string;
  readonly secureTransport?: boolean;
  /**
   * For an assumed-role session, the role's full ARN (with its path) for aws:PrincipalArn. Without it the ARN is
   * rebuilt from the session ARN, which does not carry the role's path.
   */
  readonly roleArn?: string;
  /** tp:HostClass: every class the host belongs to, nested classes included. */
  readonly hostClasses?: readonly string[];
  /** tp:Attested: whether the host's latest attestation matched its class's reference values. */
  readonly attested?: boolean;
}

const PRINCIPAL_TYPES: Record<RequestPrincipal['kind'], string> = {
  root: 'Account',
  user: 'User',
  role: 'Role',
  'assumed-role': 'AssumedRole',
  host: 'Host',
};

/** The condition keys of a KMS request, named as AWS names them (plus tp:HostClass and tp:Attested). */
export function kmsConditionKeys(input: KmsConditionInput): Record<string, ConditionKeyValue> {
  const { principal } = input;
  const keys: Record<string, ConditionKeyValue> = {};
  if (input.encryptionContext !== undefined) {
    const names = Object.keys(input.encryptionContext);
    for (const name of names) keys[`kms:EncryptionContext:${name}`] = input.encryptionContext[name];
    keys['kms:EncryptionContextKeys'] = names;
  }
  keys['kms:CallerAccount'] = input.callerAccount ?? principal.accountId;
  if (input.viaService !== undefined) keys['kms:ViaService'] = input.viaService;
  if (input.requestAlias !== undefined) keys['kms:RequestAlias'] = input.requestAlias;
  if (input.keySpec !== undefined) keys['kms:KeySpec'] = input.keySpec;
  if (input.keyUsage !== undefined) keys['kms:KeyUsage'] = input.keyUsage;
  if (input.sourceIp !== undefined) keys['aws:SourceIp'] = input.sourceIp;
  if (input.secureTransport !== undefined) keys['aws:SecureTransport'] = input.secureTransport;
  keys['aws:CurrentTime'] = input.now.toISOString();
  keys['aws:EpochTime'] = Math.floor(input.now.getTime() / 1000);
  keys['aws:PrincipalArn'] = principalArnKey(principal, input.roleArn);
  keys['aws:PrincipalAccount'] = principal.accountId;
  keys['aws:PrincipalType'] = PRINCIPAL_TYPES[principal.kind];
  if (principal.kind === 'user') keys['aws:username'] = principal.arn.slice(principal.arn.lastIndexOf('/') + 1);
  for (const [tag, value] of Object.entries(principal.tags ?? {})) keys[`aws:PrincipalTag/${tag}`] = value;
  if (input.hostClasses !== undefined) keys['tp:HostClass'] = input.hostClasses;
  if (input.attested !== undefined) keys['tp:Attested'] = input.attested;
  return keys;
}

/** AWS puts the role's ARN, not the session's, into aws:PrincipalArn for assumed-role callers. */
function principalArnKey(principal: RequestPrincipal, roleArn: string | undefined): string {
  if (principal.kind !== 'assumed-role') return principal.arn;
  if (roleArn !== undefined) return roleArn;
  const match = /^arn:([^:]+):sts::(\d+):assumed-role\/([^/]+)\//.exec(principal.arn);
  return match ? `arn:${match[1]}:iam::${match[2]}:role/${match[3]}` : principal.arn;
}
