// zone.yaml for `trustplane proxy s3`: its schema, loaded and validated once at start-up.
// Must never echo a secret in an error, and never start with a rule that names a zone, bucket or detector it lacks.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { BUILTIN_DETECTOR_NAMES, compileDetectorPolicy, type DataScannerFactory } from '../../shared/data-policy/index.ts';
import { UserError } from '../../shared/errors.ts';
import { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../../shared/crypto/index.ts';

export const POLICY_ACTIONS = ['encrypt', 'pass', 'deny', 'quarantine', 'snapshot', 'log'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number] | `route:${string}`;
export type DataKeySpec = 'AES_128' | 'AES_256';

const name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be lower-case letters, digits, _ or -');
const url = z.string().url().refine((text) => /^https?:\/\//.test(text), 'must be an http(s) URL');
const secret = z.string().min(1).max(1024);
// S3 bucket naming (the client's bucket; the backing bucket adds the zone's prefix).
const bucketName = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name');

const zoneSchema = z.object({
  endpoint: url,
  region: z.string().min(1).max(64).default('us-east-1'),
  accessKeyId: z.string().min(1).max(128),
  secretAccessKey: secret,
  bucketPrefix: z.string().regex(/^[a-z0-9.-]{0,40}$/, 'must be lower-case letters, digits, . or -').default(''),
  hashNames: z.boolean().default(false),
}).strict();

const actionSchema = z.string().refine((text) => (POLICY_ACTIONS as readonly string[]).includes(text) || /^route:[a-z0-9][a-z0-9_-]{0,62}$/.test(text),
  `must be one of ${POLICY_ACTIONS.join(', ')} or route:<zone>`);

const ruleSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be letters, digits, _, . or -'),
  match: z.object({
    bucket: z.string().min(1).max(63).default('*'),
    prefix: z.string().max(1024).default(''),
    contentType: z.string().min(1).max(255).optional(),
    detectors: z.array(z.string().min(1).max(64)).min(1).max(64).optional(),
  }).strict().default({}),
  action: z.union([actionSchema, z.array(actionSchema).min(1).max(8)]),
  keySpec: z.enum(['AES_128', 'AES_256']).optional(),
}).strict();

const customDetector = z.record(z.unknown());

export const zoneConfigSchema = z.object({
  listen: z.string().regex(/^[^:\s]+:\d{1,5}$/, 'must be host:port').default('127.0.0.1:9000'),
  zone: name,
  region: z.string().min(1).max(64).optional(),
  /** Names the proxy answers virtual-host-style requests under (bucket.NAME); localhost always. */
  hostnames: z.array(z.string().regex(/^[a-z0-9.-]{1,253}$/, 'must be a host name')).max(16).default([]),
  kms: z.object({
    endpoint: url,
    region: z.string().min(1).max(64).default('us-east-1'),
    accessKeyId: z.string().min(1).max(128),
    secretAccessKey: secret,
    keyId: z.string().min(1).max(2048),
    nameKeyId: z.string().min(1).max(2048).optional(),
  }).strict(),
  clients: z.record(z.string().regex(/^[A-Za-z0-9]{8,128}$/, 'access key ids are 8 to 128 letters or digits'), secret)
    .refine((clients) => Object.keys(clients).length > 0, 'needs at least one client credential'),
  zones: z.record(name, zoneSchema).refine((zones) => Object.keys(zones).length > 0, 'needs at least one backing zone'),
  defaultZone: name.optional(),
  buckets: z.record(bucketName, z.object({ zone: name }).strict()).default({}),
  quarantine: z.object({ bucket: bucketName, zone: name.optional() }).strict().optional(),
  evidence: z.object({ bucket: bucketName, zone: name.optional() }).strict().optional(),
  auditLog: z.string().min(1).optional(),
  chunkSize: z.number().int().min(MIN_CHUNK_SIZE).max(MAX_CHUNK_SIZE).default(DEFAULT_CHUNK_SIZE),
  defaultKeySpec: z.enum(['AES_128', 'AES_256']).default('AES_256'),
  detectors: z.object({
    contextWindow: z.number().int().min(0).max(1024).optional(),
    phoneRegion: z.string().optional(),
    maxMatches: z.number().int().min(1).max(1_000_000).optional(),
    custom: z.array(customDetector).max(64).default([]),
  }).strict().default({}),
  policies: z.array(ruleSchema).max(256).default([]),
}).strict();

type ParsedZoneConfig = z.infer<typeof zoneConfigSchema>;
export type BackingZoneConfig = z.infer<typeof zoneSchema> & { name: string };

export interface PolicyRule {
  name: string;
  bucket: string;
  prefix: string;
  contentType?: string;
  detectors?: readonly string[];
  actions: readonly PolicyAction[];
  keySpec?: DataKeySpec;
}

export interface ZoneProxyConfig {
  host: string;
  port: number;
  zone: string;
  region?: string;
  hostnames: readonly string[];
  kms: ParsedZoneConfig['kms'];
  clients: ReadonlyMap<string, string>;
  zones: ReadonlyMap<string, BackingZoneConfig>;
  defaultZone: string;
  bucketZones: ReadonlyMap<string, string>;
  quarantine?: { bucket: string; zone: string };
  evidence?: { bucket: string; zone: string };
  auditLog?: string;
  chunkSize: number;
  defaultKeySpec: DataKeySpec;
  rules: readonly PolicyRule[];
  /** Every detector any rule names, compiled once; undefined when no rule scans. */
  scanner?: DataScannerFactory;
}

function describeIssue(issue: z.ZodIssue): string {
  const path = issue.path.reduce<string>((text, part) => typeof part === 'number' ? `${text}[${part}]` : text ? `${text}.${part}` : String(part), '');
  return `${path || '(top level)'}: ${issue.message}`;
}

const invalid = (message: string) => new UserError('InvalidConfiguration', message);

/** Validates a parsed zone.yaml; `baseDir` resolves relative paths (the audit log) against the file's directory. */
export function validateZoneConfig(input: unknown, baseDir = process.cwd()): ZoneProxyConfig {
  const parsed = zoneConfigSchema.safeParse(input ?? {});
  if (!parsed.success) throw invalid(parsed.error.issues.slice(0, 8).map(describeIssue).join('; '));
  const config = parsed.data;
  const zoneNames = Object.keys(config.zones);
  const defaultZone = config.defaultZone ?? (zoneNames.length === 1 ? zoneNames[0] : undefined);
  if (!defaultZone) throw invalid('defaultZone: required when there is more than one zone');
  const needZone = (zone: string | undefined, field: string): string => {
    const resolved = zone ?? defaultZone;
    if (!config.zones[resolved]) throw invalid(`${field}: names zone '${resolved}', which is not under zones (${zoneNames.join(', ')})`);
    return resolved;
  };
  needZone(defaultZone, 'defaultZone');
  for (const [bucket, placement] of Object.entries(config.buckets)) needZone(placement.zone, `buckets.${bucket}.zone`);
  if (config.quarantine && config.evidence && config.quarantine.bucket === config.evidence.bucket) {
    throw invalid('evidence.bucket: must differ from quarantine.bucket (their copies are named differently)');
  }
  if (Object.values(config.zones).some((zone) => zone.hashNames) && !config.kms.nameKeyId) {
    throw invalid('kms.nameKeyId: required when a zone sets hashNames (the HMAC key that hashes object names)');
  }
  for (const [clientKey] of Object.entries(config.clients)) {
    for (const [zoneName, zone] of Object.entries(config.zones)) {
      if (zone.accessKeyId === clientKey) throw invalid(`clients.${clientKey}: is also zone ${zoneName}'s backing access key; client and backing credentials must differ`);
    }
    if (config.kms.accessKeyId === clientKey) throw invalid(`clients.${clientKey}: is also the key service's access key; they must differ`);
  }

  const customNames = new Set(config.detectors.custom.map((entry) => String(entry.name)));
  const known = new Set<string>([...BUILTIN_DETECTOR_NAMES, ...customNames]);
  const used = new Set<string>();
  const rules: PolicyRule[] = config.policies.map((rule, index) => {
    const actions = (Array.isArray(rule.action) ? rule.action : [rule.action]) as PolicyAction[];
    for (const detector of rule.match.detectors ?? []) {
      if (!known.has(detector)) throw invalid(`policies[${index}].match.detectors: '${detector}' is neither a built-in detector (${BUILTIN_DETECTOR_NAMES.join(', ')}) nor under detectors.custom`);
      used.add(detector);
    }
    for (const action of actions) {
      if (action.startsWith('route:')) needZone(action.slice('route:'.length), `policies[${index}].action`);
      if (action === 'quarantine' && !config.quarantine) throw invalid(`policies[${index}].action: quarantine needs a quarantine bucket (quarantine: {bucket, zone})`);
      if (action === 'snapshot' && !config.evidence) throw invalid(`policies[${index}].action: snapshot needs an evidence bucket (evidence: {bucket, zone})`);
    }
    const placements = actions.filter((action) => action === 'deny' || action === 'quarantine' || action === 'pass' || action === 'encrypt' || action.startsWith('route:'));
    if (placements.length > 1 && !placements.every((action) => action === 'encrypt' || action.startsWith('route:'))) {
      throw invalid(`policies[${index}].action: ${placements.join(' and ')} contradict each other`);
    }
    if (rule.keySpec && actions.includes('pass')) throw invalid(`policies[${index}].keySpec: a pass rule stores data in clear, so it has no key`);
    return { name: rule.name, bucket: rule.match.bucket, prefix: rule.match.prefix, contentType: rule.match.contentType,
      detectors: rule.match.detectors, actions, keySpec: rule.keySpec };
  });
  const names = new Set<string>();
  for (const rule of rules) {
    if (names.has(rule.name)) throw invalid(`policies: the rule name '${rule.name}' is used twice`);
    names.add(rule.name);
  }
  let scanner: DataScannerFactory | undefined;
  if (used.size > 0) {
    const detectors = [...used].map((detector) => customNames.has(detector)
      ? config.detectors.custom.find((entry) => entry.name === detector) : detector);
    scanner = compileDetectorPolicy({ detectors, contextWindow: config.detectors.contextWindow,
      phoneRegion: config.detectors.phoneRegion, maxMatches: config.detectors.maxMatches }, 'detectors');
  }
  const [host, portText] = [config.listen.slice(0, config.listen.lastIndexOf(':')), config.listen.slice(config.listen.lastIndexOf(':') + 1)];
  const port = Number(portText);
  if (port > 65535) throw invalid('listen: port must be 0 to 65535');
  return {
    host, port, zone: config.zone, region: config.region, hostnames: config.hostnames, kms: config.kms,
    clients: new Map(Object.entries(config.clients)),
    zones: new Map(Object.entries(config.zones).map(([zoneName, zone]) => [zoneName, { ...zone, name: zoneName }])),
    defaultZone,
    bucketZones: new Map(Object.entries(config.buckets).map(([bucket, placement]) => [bucket, placement.zone])),
    quarantine: config.quarantine ? { bucket: config.quarantine.bucket, zone: needZone(config.quarantine.zone, 'quarantine.zone') } : undefined,
    evidence: config.evidence ? { bucket: config.evidence.bucket, zone: needZone(config.evidence.zone, 'evidence.zone') } : undefined,
    auditLog: config.auditLog ? resolve(baseDir, config.auditLog) : undefined,
    chunkSize: config.chunkSize, defaultKeySpec: config.defaultKeySpec, rules, scanner,
  };
}

/** Reads and validates zone.yaml; every problem is one InvalidConfiguration naming the field. */
export function loadZoneConfig(path: string): ZoneProxyConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw invalid(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text, { maxAliasCount: 100 });
  } catch (error) {
    // The YAML parser's message quotes the offending line, which may hold a secret: give the position only.
    const position = (error as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
    throw invalid(`${path} is not valid YAML${position ? ` (line ${position.line}, column ${position.col})` : ''}`);
  }
  return validateZoneConfig(document, dirname(resolve(path)));
}
