// The keys this host holds, in memory, as the server pushed them: descriptors, aliases and the
// material of every version it may use. Serialised (with material) only for the encrypted cache.
// Must never hand out material: operations run here and only their results leave.
import { CustomerKey, zeroize, type KeySpec } from '../shared/crypto/index.ts';
import type { Holdings, PackedMaterial, RingKey, RingMessage } from '../shared/fleet-wire.ts';
import { parseKeyReference } from '../services/kms/domain/identifiers.ts';

export type KeyDescriptor = Omit<RingKey, 'NewVersions'>;

interface HeldKey {
  descriptor: KeyDescriptor;
  /** Raw material per version (kept for the cache) and the opened key. */
  versions: Map<number, { material: Buffer; key: CustomerKey }>;
}

interface CacheFile {
  HostId: string;
  Revision: number;
  Keys: Array<KeyDescriptor & { Versions: Record<string, string> }>;
}

export class AgentKeyRing {
  #revision = 0;
  readonly #keys = new Map<string, HeldKey>();
  #aliases = new Map<string, string>();

  get revision(): number {
    return this.#revision;
  }

  get size(): number {
    return this.#keys.size;
  }

  #open(keyId: string, spec: string, version: number, material: Buffer) {
    // CustomerKey takes ownership of what it is given (and zeroizes asymmetric input): give it a copy.
    return { material, key: new CustomerKey(keyId, version, spec as KeySpec, Buffer.from(material)) };
  }

  /** Applies a pushed message with its unsealed material; returns what the host now holds of the keys it named. */
  apply(message: RingMessage, materials: PackedMaterial[]): { holds: Holdings; removed: string[] } {
    const byKey = new Map<string, PackedMaterial[]>();
    for (const entry of materials) byKey.set(entry.keyId, [...(byKey.get(entry.keyId) ?? []), entry]);
    const holds: Holdings = {};
    for (const ringKey of message.Keys) {
      const { NewVersions: _new, ...descriptor } = ringKey;
      const held = this.#keys.get(ringKey.KeyId) ?? { descriptor, versions: new Map() };
      held.descriptor = descriptor;
      for (const entry of byKey.get(ringKey.KeyId) ?? []) {
        held.versions.get(entry.version)?.key.destroy();
        held.versions.set(entry.version, this.#open(ringKey.KeyId, ringKey.KeySpec, entry.version, Buffer.from(entry.material)));
      }
      // Versions below the minimum, or above what the server knows (a superseded staged version), go.
      const top = Math.max(descriptor.DefaultVersion, descriptor.PendingVersion ?? 0);
      for (const [version, opened] of held.versions) {
        if (version < descriptor.MinDecryptVersion || version > top) {
          opened.key.destroy();
          zeroize(opened.material);
          held.versions.delete(version);
        }
      }
      this.#keys.set(ringKey.KeyId, held);
      holds[ringKey.KeyId] = [...held.versions.keys()].sort((a, b) => a - b);
    }
    for (const keyId of message.Removed) this.#drop(keyId);
    this.#revision = Math.max(this.#revision, message.Revision);
    this.#reindexAliases();
    return { holds, removed: message.Removed };
  }

  noteRevision(revision: number): void {
    this.#revision = Math.max(this.#revision, revision);
  }

  #drop(keyId: string): void {
    const held = this.#keys.get(keyId);
    if (!held) return;
    for (const opened of held.versions.values()) {
      opened.key.destroy();
      zeroize(opened.material);
    }
    this.#keys.delete(keyId);
  }

  #reindexAliases(): void {
    this.#aliases = new Map();
    for (const held of this.#keys.values()) for (const alias of held.descriptor.Aliases) this.#aliases.set(alias, held.descriptor.KeyId);
  }

  holdings(): Holdings {
    return Object.fromEntries([...this.#keys].map(([keyId, held]) => [keyId, [...held.versions.keys()].sort((a, b) => a - b)]));
  }

  /** A key by id, ARN or alias (alias/NAME or its ARN). */
  find(reference: string): HeldKey | undefined {
    const parsed = parseKeyReference(reference);
    if (parsed.kind === 'key') return this.#keys.get(parsed.keyId);
    const keyId = parsed.kind === 'alias' ? this.#aliases.get(parsed.aliasName) : undefined;
    return keyId ? this.#keys.get(keyId) : undefined;
  }

  version(held: HeldKey, version: number): CustomerKey | undefined {
    return held.versions.get(version)?.key;
  }

  describe() {
    return [...this.#keys.values()].map((held) => ({ ...held.descriptor, Versions: [...held.versions.keys()].sort((a, b) => a - b) }));
  }

  wipe(): void {
    for (const keyId of [...this.#keys.keys()]) this.#drop(keyId);
    this.#aliases.clear();
    this.#revision = 0;
  }

  /** The cache's plaintext (material included): to be encrypted at once and zeroed. */
  serialize(hostId: string): Buffer {
    const file: CacheFile = { HostId: hostId, Revision: this.#revision, Keys: [...this.#keys.values()].map((held) => ({
      ...held.descriptor,
      Versions: Object.fromEntries([...held.versions].map(([version, opened]) => [String(version), opened.material.toString('base64')])),
    })) };
    return Buffer.from(JSON.stringify(file));
  }

  load(hostId: string, plaintext: Buffer): void {
    const file = JSON.parse(plaintext.toString('utf8')) as CacheFile;
    if (file.HostId !== hostId) throw new Error('the key ring cache belongs to another host');
    this.wipe();
    for (const entry of file.Keys) {
      const { Versions, ...descriptor } = entry;
      const versions = new Map<number, { material: Buffer; key: CustomerKey }>();
      for (const [version, material] of Object.entries(Versions)) {
        versions.set(Number(version), this.#open(descriptor.KeyId, descriptor.KeySpec, Number(version), Buffer.from(material, 'base64')));
      }
      this.#keys.set(descriptor.KeyId, { descriptor, versions });
    }
    this.#revision = file.Revision;
    this.#reindexAliases();
  }
}
