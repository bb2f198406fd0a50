// Pushes key ring changes to connected agents over Server-Sent Events. The change feed in the
// store is the source: this server wakes on its own commits and also tails the feed every second,
// so a change made through any replica reaches agents connected to this one.
// Must never send a host anything for a revision it is not entitled to at the time of sending.
import type { ServerResponse } from 'node:http';
import type { HelloMessage, RingMessage } from '../../shared/fleet-wire.ts';
import type { Logger } from '../../shared/log.ts';
import type { FleetChange, FleetStore, HostRecord } from '../../shared/store/index.ts';
import { classesByName } from './domain/classes.ts';
import type { KeyRingDistributor } from './distribution.ts';
import { mergeScopes, scopeOfChanges, type RingScope } from './domain/ring-scope.ts';

const FEED_BATCH = 1000;
const TAIL_INTERVAL_MS = 1000;
const HEARTBEAT_INTERVAL_MS = 15_000;

/** One agent's open stream. Sends run one at a time, in revision order. */
class AgentStream {
  readonly hostId: string;
  readonly accountId: string;
  /** The last revision this stream brought the agent to. */
  revision: number;
  closed = false;
  #pending: RingScope | undefined;
  #pendingRevision = 0;
  #sending = false;
  readonly #response: ServerResponse;
  readonly #hub: FleetPushHub;

  constructor(hub: FleetPushHub, host: HostRecord, revision: number, response: ServerResponse) {
    this.#hub = hub;
    this.hostId = host.hostId;
    this.accountId = host.accountId;
    this.revision = revision;
    this.#response = response;
  }

  write(event: string, data: unknown, id?: number): void {
    if (this.closed) return;
    this.#response.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  heartbeat(): void {
    if (!this.closed) this.#response.write(': keep-alive\n\n');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#response.end();
  }

  /** Queues `scope` at `revision`, merged with anything queued and not yet sent. */
  enqueue(scope: RingScope, revision: number): void {
    this.#pending = mergeScopes(this.#pending, scope);
    this.#pendingRevision = Math.max(this.#pendingRevision, revision);
    if (!this.#sending) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#sending = true;
    try {
      while (this.#pending && !this.closed) {
        const scope = this.#pending;
        const revision = this.#pendingRevision;
        this.#pending = undefined;
        await this.#hub.send(this, scope, revision);
      }
    } finally {
      this.#sending = false;
    }
  }
}

export class FleetPushHub {
  readonly #store: FleetStore;
  readonly #distributor: KeyRingDistributor;
  readonly #logger: Logger;
  readonly #streams = new Map<string, Set<AgentStream>>();
  #tailRevision = 0;
  #draining = false;
  #wakeAgain = false;
  #timers: NodeJS.Timeout[] = [];
  readonly #attachListeners = new Set<(host: HostRecord) => void>();

  constructor(options: { store: FleetStore; distributor: KeyRingDistributor; logger: Logger }) {
    this.#store = options.store;
    this.#distributor = options.distributor;
    this.#logger = options.logger;
  }

  async start(): Promise<void> {
    this.#tailRevision = await this.#store.latestRevision();
    this.#timers = [setInterval(() => this.wake(), TAIL_INTERVAL_MS), setInterval(() => this.#heartbeat(), HEARTBEAT_INTERVAL_MS)];
    for (const timer of this.#timers) timer.unref();
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    for (const streams of this.#streams.values()) for (const stream of streams) stream.close();
    this.#streams.clear();
  }

  /** Reads the feed past what was seen and queues what it means for each connected agent. */
  wake(): void {
    if (this.#draining) {
      this.#wakeAgain = true;
      return;
    }
    this.#draining = true;
    void this.#drain().catch((error: unknown) => this.#logger.error({ err: error }, 'fleet push failed'))
      .finally(() => {
        this.#draining = false;
        if (this.#wakeAgain) {
          this.#wakeAgain = false;
          this.wake();
        }
      });
  }

  async #drain(): Promise<void> {
    for (;;) {
      const changes = await this.#store.changesAfter(this.#tailRevision, FEED_BATCH);
      if (changes.length === 0) return;
      this.#tailRevision = changes[changes.length - 1].revision;
      if (this.#streams.size > 0) await this.#dispatch(changes);
    }
  }

  async #dispatch(changes: FleetChange[]): Promise<void> {
    const byAccount = new Map<string, FleetChange[]>();
    for (const change of changes) {
      const list = byAccount.get(change.accountId) ?? [];
      list.push(change);
      byAccount.set(change.accountId, list);
    }
    for (const [accountId, accountChanges] of byAccount) {
      const streams = [...this.#streams.values()].flatMap((set) => [...set]).filter((stream) => stream.accountId === accountId);
      if (streams.length === 0) continue;
      const classes = classesByName(await this.#store.listClasses(accountId));
      const holdings = await this.#store.holdingsByHost(accountId);
      const hosts = new Map((await this.#store.listHosts(accountId)).map((host) => [host.hostId, host]));
      const revision = accountChanges[accountChanges.length - 1].revision;
      for (const stream of streams) {
        const scope = scopeOfChanges(accountChanges, hosts.get(stream.hostId), stream.hostId, classes,
          new Set(Object.keys(holdings.get(stream.hostId) ?? {})));
        if (scope) stream.enqueue(scope, revision);
      }
    }
  }

  /**
   * Opens a stream for an agent that last saw `since`: it gets a hello, then only what changed
   * after `since` for it (everything, for a new agent), then every later change as it happens.
   */
  async attach(host: HostRecord, since: number, response: ServerResponse): Promise<void> {
    const latest = await this.#store.latestRevision();
    const stream = new AgentStream(this, host, since, response);
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive',
      'x-accel-buffering': 'no' });
    const hello: HelloMessage = { HostId: host.hostId, Revision: latest, CertificateExpiresAt: host.certificateNotAfter.toISOString() };
    stream.write('hello', hello);
    const set = this.#streams.get(host.hostId) ?? new Set();
    set.add(stream);
    this.#streams.set(host.hostId, set);
    response.on('close', () => {
      stream.closed = true;
      set.delete(stream);
      if (set.size === 0 && this.#streams.get(host.hostId) === set) this.#streams.delete(host.hostId);
    });
    for (const listener of this.#attachListeners) listener(host);
    const scope = await this.#catchUpScope(host, since, latest);
    if (scope) stream.enqueue(scope, latest);
  }

  /** Called after a host's stream opened and got its hello (other services announce what waits for the host). */
  onAttach(listener: (host: HostRecord) => void): () => void {
    this.#attachListeners.add(listener);
    return () => this.#attachListeners.delete(listener);
  }

  /**
   * Sends the connected streams of a host an event that is not part of the key ring (no revision id, so it does not
   * move the agent's resume point); false when the host has no stream here.
   */
  notify(hostId: string, event: 'privop', data: unknown): boolean {
    const streams = this.#streams.get(hostId);
    if (!streams?.size) return false;
    for (const stream of streams) stream.write(event, data);
    return true;
  }

  async #catchUpScope(host: HostRecord, since: number, latest: number): Promise<RingScope | undefined> {
    if (since <= 0 || since > latest) return { kind: 'all' };
    const changes = (await this.#store.changesSince(host.accountId, since, FEED_BATCH + 1)).filter((change) => change.revision <= latest);
    if (changes.length === 0) return undefined;
    // Far behind: a full look costs less than replaying the feed (still only missing material is sent).
    if (changes.length > FEED_BATCH) return { kind: 'all' };
    const classes = classesByName(await this.#store.listClasses(host.accountId));
    return scopeOfChanges(changes, host, host.hostId, classes, new Set(Object.keys(await this.#store.holdingsOf(host.hostId))));
  }

  /** Sends one stream what `scope` means now; a revoked or removed host is told so and cut off. */
  async send(stream: AgentStream, scope: RingScope, revision: number): Promise<void> {
    const host = await this.#store.findHost(stream.hostId);
    if (!host || scope.kind === 'revoked') {
      this.revoke(stream.hostId, 'The host was removed from the fleet.');
      return;
    }
    let message: RingMessage | undefined;
    try {
      message = await this.#distributor.messageFor(host, scope, revision);
    } catch (error) {
      // Sealed, most likely: the agent keeps what it has and gets this revision on its next connection.
      this.#logger.warn({ err: error, hostId: host.hostId }, 'key ring could not be prepared; closing the stream for a later retry');
      stream.close();
      return;
    }
    stream.revision = revision;
    if (message) stream.write('ring', message, revision);
    else stream.write('revision', { Revision: revision }, revision);
  }

  /** Tells every stream of a host that it is revoked (its agent wipes its cache) and closes them. */
  revoke(hostId: string, reason: string): void {
    for (const stream of this.#streams.get(hostId) ?? []) {
      stream.write('revoked', { HostId: hostId, Reason: reason });
      stream.close();
    }
  }

  #heartbeat(): void {
    for (const streams of this.#streams.values()) for (const stream of streams) stream.heartbeat();
  }
}
