// The crypto module's domain-key store contract (as the SQLite store keeps it) in memory, for tests
// and benches of a module alone. Never persists anything; a test can make the next write fail.
import type { DomainKeyRecord, DomainKeyStore } from '../../src/shared/crypto/index.ts';

export class MemoryDomainKeyStore implements DomainKeyStore {
  records: DomainKeyRecord[] = [];
  readonly values = new Map<string, Buffer>();
  failNextWrite = false;
  /** Awaited before every write, so a test can act while the module waits on the store. */
  beforeWrite: (() => Promise<void>) | undefined;

  async listDomainKeys(): Promise<DomainKeyRecord[]> {
    return this.records.map((record) => ({ ...record }));
  }

  async insertDomainKey(record: DomainKeyRecord): Promise<void> {
    await this.beforeWrite?.();
    this.#failIfAsked();
    if (record.state === 'active') {
      for (const existing of this.records) if (existing.state === 'active') existing.state = 'retiring';
    }
    this.records.push({ ...record });
  }

  async retireDomainKey(id: string): Promise<void> {
    this.#failIfAsked();
    const record = this.records.find((candidate) => candidate.id === id);
    if (record?.state === 'retired') return; // as SqliteStore: a second retirement is not an error
    if (!record || record.state !== 'retiring') throw new Error(`domain key ${id} is not retiring`);
    record.state = 'retired';
    record.wrapped = Buffer.alloc(0);
  }

  async getModuleValue(name: string): Promise<Buffer | undefined> {
    return this.values.get(name);
  }

  async initializeModule(firstDomainKey: DomainKeyRecord, values: Record<string, Buffer>): Promise<void> {
    await this.beforeWrite?.();
    this.#failIfAsked();
    if (this.records.some((record) => record.state !== 'retired')) throw new Error('the crypto module is already initialised');
    this.records.push({ ...firstDomainKey });
    for (const [name, value] of Object.entries(values)) this.values.set(name, value);
  }

  stateOf(id: string): string | undefined {
    return this.records.find((record) => record.id === id)?.state;
  }

  #failIfAsked(): void {
    if (!this.failNextWrite) return;
    this.failNextWrite = false;
    throw new Error('simulated store failure');
  }
}
