// What a host is sent: the keys its classes entitle it to, with sealed material for the versions
// it does not hold yet, and the keys it must drop. Only material a host lacks is ever sent.
// Must never put key material anywhere but the HPKE-sealed part, and zero it once sealed.
import { hpkeSeal, zeroize, type Keyring, type KeySpec } from '../../shared/crypto/index.ts';
import {
  keyRingAad, KEY_RING_HPKE_INFO, packMaterial, type PackedMaterial, type RingKey, type RingMessage,
} from '../../shared/fleet-wire.ts';
import type { ConditionValue } from '../../shared/auth/index.ts';
import type { FleetStore, HostRecord, Store } from '../../shared/store/index.ts';
import { classesByName, entitledKeyIds } from './domain/classes.ts';
import type { RingScope } from './domain/ring-scope.ts';

const MAX_ALIASES_PER_KEY = 100;

/**
 * What decides, beyond class grants, whether a host may hold keys now (attestation, quarantine) and
 * each key (its policy's tp:* conditions). Absent: class grants alone decide.
 */
export interface KeyReleaseGate {
  context(host: HostRecord): Promise<{ mayHoldKeys: boolean; conditionKeys: Record<string, ConditionValue> }>;
  keyAllowed(keyId: string, host: HostRecord, conditionKeys: Record<string, ConditionValue>): Promise<boolean>;
}

export class KeyRingDistributor {
  readonly #keys: Store;
  readonly #fleet: FleetStore;
  readonly #keyring: Keyring;
  readonly #gate?: KeyReleaseGate;

  constructor(options: { keys: Store; fleet: FleetStore; keyring: Keyring; gate?: KeyReleaseGate }) {
    this.#keys = options.keys;
    this.#fleet = options.fleet;
    this.#keyring = options.keyring;
    this.#gate = options.gate;
  }

  /** The keys a host may hold now: its classes' grants, minus what attestation, quarantine or key policies withhold. */
  async entitledKeys(host: HostRecord): Promise<Set<string>> {
    const classes = classesByName(await this.#fleet.listClasses(host.accountId));
    const granted = entitledKeyIds(classes, host.classes);
    if (!this.#gate) return new Set(host.status === 'active' ? granted : []);
    const release = await this.#gate.context(host);
    if (!release.mayHoldKeys) return new Set();
    const allowed = new Set<string>();
    for (const keyId of granted) if (await this.#gate.keyAllowed(keyId, host, release.conditionKeys)) allowed.add(keyId);
    return allowed;
  }

  /**
   * The message bringing `host` up to date for `scope` at `revision`; undefined when it already
   * holds everything in scope and nothing is to be removed or announced.
   */
  async messageFor(host: HostRecord, scope: Exclude<RingScope, { kind: 'revoked' }>, revision: number): Promise<RingMessage | undefined> {
    if (!host.hpkePublicKey) return undefined;
    const entitled = await this.entitledKeys(host);
    const held = await this.#fleet.holdingsOf(host.hostId);
    const inScope = scope.kind === 'all' ? new Set([...entitled, ...Object.keys(held)]) : scope.keyIds;
    const keys: RingKey[] = [];
    const removed: string[] = [];
    const material: PackedMaterial[] = [];
    try {
      for (const keyId of [...inScope].sort()) {
        const key = entitled.has(keyId) ? await this.#keys.getKey(keyId) : undefined;
        if (!key || key.keyState === 'PendingDeletion' || key.accountId !== host.accountId) {
          removed.push(keyId);
          continue;
        }
        const top = Math.max(key.currentVersion, key.pendingVersion ?? 0);
        const has = new Set(held[keyId] ?? []);
        const newVersions: number[] = [];
        for (let version = key.minDecryptVersion; version <= top; version += 1) {
          if (has.has(version)) continue;
          const stored = await this.#keys.getKeyVersion(keyId, version);
          if (!stored) continue;
          material.push({ keyId, version, material: await this.#keyring.unsafeExportKeyMaterial({ keyId, version,
            spec: key.keySpec as KeySpec, material: stored.material }) });
          newVersions.push(version);
        }
        const aliases = await this.#keys.listAliases(key.accountId, keyId, MAX_ALIASES_PER_KEY);
        keys.push({ KeyId: keyId, Arn: key.arn, KeySpec: key.keySpec, KeyUsage: key.keyUsage, Enabled: key.keyState === 'Enabled',
          DefaultVersion: key.currentVersion, PendingVersion: key.pendingVersion, MinDecryptVersion: key.minDecryptVersion,
          Aliases: aliases.items.map((alias) => alias.aliasName), NewVersions: newVersions });
      }
      if (keys.length === 0 && removed.length === 0) return undefined;
      const message: RingMessage = { HostId: host.hostId, Revision: revision, Keys: keys, Removed: removed };
      if (material.length > 0) {
        const packed = packMaterial(material);
        try {
          const sealed = await hpkeSeal(host.hpkePublicKey, packed, KEY_RING_HPKE_INFO, keyRingAad(host.hostId, revision));
          message.Sealed = { Enc: sealed.enc.toString('base64'), Ciphertext: sealed.ciphertext.toString('base64') };
        } finally {
          zeroize(packed);
        }
      }
      return message;
    } finally {
      zeroize(...material.map((entry) => entry.material));
    }
  }
}
