// The agent's state directory: its identity (certificate and keys), its host-local cache key, and
// the key ring cache and attested host certificate (with its key) encrypted under it. Every file is
// 0600 in a 0700 directory, written durably.
// Must never write key material except encrypted under the host-local key.
import {
  closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { aesGcmDecrypt, aesGcmEncrypt, GCM_NONCE_LENGTH, GCM_TAG_LENGTH, randomBytes, zeroize } from '../shared/crypto/index.ts';
import { UserError } from '../shared/errors.ts';
import { writeFileDurably } from '../shared/fs.ts';
import type { MeasurementEvent } from '../shared/attest-wire.ts';

const IDENTITY_FILE = 'identity.json';
const IDENTITY_KEY_FILE = 'identity.key';
const KEY_RING_KEY_FILE = 'keyring.key';
const LOCAL_KEY_FILE = 'local.key';
const CACHE_FILE = 'keyring.cache';
/** The agent's measurement event list (digests of files it was told to measure: nothing secret). */
const MEASUREMENTS_FILE = 'measurements.json';
const CACHE_MAGIC = Buffer.from('TPKC1');
/** The certificate and its key in one file, written at once (renamed into place): never one without the other. */
const ATTESTED_CERTIFICATE_FILE = 'attested-certificate.sealed';
const ATTESTED_MAGIC = Buffer.from('TPAC1');
/** The privileged-operation request key (raw X25519 private key), kept like the key ring key: the host's own, never sent. */
const REQUEST_KEY_FILE = 'privop-request.key';
/** The host's classes as the server last told it (no secret): what class-targeted requests are judged against offline. */
const HOST_CLASSES_FILE = 'host-classes.json';

/** What enrolment gave this host (no secrets: the private keys are in their own files). */
export interface AgentIdentity {
  HostId: string;
  AccountId: string;
  ServerUrl: string;
  ServerName: string;
  FleetPort?: number;
  Certificate: string;
  CaCertificate: string;
  CertificateExpiresAt: string;
  /** When this host received the certificate: renewal is due two thirds of the way from here to expiry. */
  CertificateReceivedAt: string;
}

/** The attested host certificate (issued while attestation affirms); its private key is stored beside it, never sent. */
export interface AttestedCertificateState {
  Certificate: string;
  Chain: string[];
  Serial: string;
  NotAfter: string;
  /** Renewal is due two thirds of the way from here to expiry. */
  ReceivedAt: string;
}

export class AgentState {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  prepare(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const mode = statSync(this.dir).mode & 0o777;
    if (mode & 0o077) {
      throw new UserError('InsecureStateDirectory', `${this.dir} is readable by others (mode ${mode.toString(8)}); chmod 700 it.`);
    }
  }

  #read(name: string): Buffer | undefined {
    const path = join(this.dir, name);
    return existsSync(path) ? readFileSync(path) : undefined;
  }

  identity(): AgentIdentity | undefined {
    const text = this.#read(IDENTITY_FILE);
    return text ? JSON.parse(text.toString('utf8')) as AgentIdentity : undefined;
  }

  /** The identity private key (PKCS#8 PEM) and the key ring (HPKE) private key; the caller zeroizes the latter. */
  privateKeys(): { identityKeyPem: string; keyRingKey: Buffer } {
    const identityKeyPem = this.#read(IDENTITY_KEY_FILE)?.toString('utf8');
    const keyRingKey = this.#read(KEY_RING_KEY_FILE);
    if (!identityKeyPem || !keyRingKey) throw new UserError('BrokenState', `${this.dir} has an identity but not its keys; enrol again with a new join token.`);
    return { identityKeyPem, keyRingKey };
  }

  saveEnrolment(identity: AgentIdentity, identityKeyPem: string, keyRingKey: Buffer): void {
    writeFileDurably(join(this.dir, IDENTITY_KEY_FILE), identityKeyPem);
    writeFileDurably(join(this.dir, KEY_RING_KEY_FILE), keyRingKey);
    // Last: an identity file means a complete enrolment.
    writeFileDurably(join(this.dir, IDENTITY_FILE), `${JSON.stringify(identity, null, 2)}\n`);
  }

  /** After a renewal: the new key first, then the certificate naming it. */
  saveRenewal(identity: AgentIdentity, identityKeyPem: string): void {
    writeFileDurably(join(this.dir, `${IDENTITY_KEY_FILE}.next`), identityKeyPem);
    writeFileDurably(join(this.dir, IDENTITY_FILE), `${JSON.stringify(identity, null, 2)}\n`);
    writeFileDurably(join(this.dir, IDENTITY_KEY_FILE), identityKeyPem);
    rmSync(join(this.dir, `${IDENTITY_KEY_FILE}.next`), { force: true });
  }

  /** The request key's raw X25519 private key (the caller zeroizes it), when this host has made one. */
  requestKey(): Buffer | undefined {
    return this.#read(REQUEST_KEY_FILE);
  }

  saveRequestKey(privateKey: Buffer): void {
    writeFileDurably(join(this.dir, REQUEST_KEY_FILE), privateKey);
  }

  /** The host's classes as last told by the server, with when; undefined before the first registration. */
  hostClasses(): { Classes: string[]; ReceivedAt: string } | undefined {
    const text = this.#read(HOST_CLASSES_FILE);
    return text ? JSON.parse(text.toString('utf8')) as { Classes: string[]; ReceivedAt: string } : undefined;
  }

  saveHostClasses(classes: string[], receivedAt: Date): void {
    writeFileDurably(join(this.dir, HOST_CLASSES_FILE), `${JSON.stringify({ Classes: classes, ReceivedAt: receivedAt.toISOString() })}\n`);
  }

  /** The attested host certificate and its key (PKCS#8 PEM), when there is one; one that does not decrypt is an error. */
  attestedCertificate(hostId: string): { certificate: AttestedCertificateState; keyPem: string } | undefined {
    const file = this.#read(ATTESTED_CERTIFICATE_FILE);
    if (!file) return undefined;
    const plaintext = this.#open(ATTESTED_MAGIC, hostId, file, ATTESTED_CERTIFICATE_FILE);
    try {
      const { PrivateKey, ...certificate } = JSON.parse(plaintext.toString('utf8')) as AttestedCertificateState & { PrivateKey: string };
      return { certificate, keyPem: PrivateKey };
    } finally {
      zeroize(plaintext);
    }
  }

  /** Encrypted under the host-local key, bound to the host id, like the key ring cache. */
  saveAttestedCertificate(hostId: string, certificate: AttestedCertificateState, keyPem: string): void {
    const plaintext = Buffer.from(JSON.stringify({ ...certificate, PrivateKey: keyPem }));
    try {
      writeFileDurably(join(this.dir, ATTESTED_CERTIFICATE_FILE), this.#seal(ATTESTED_MAGIC, hostId, plaintext));
    } finally {
      zeroize(plaintext);
    }
  }

  /** Revoked (quarantine): the certificate and its key go. */
  removeAttestedCertificate(): void {
    this.#shred(ATTESTED_CERTIFICATE_FILE);
  }

  #localKey(): Buffer {
    const existing = this.#read(LOCAL_KEY_FILE);
    if (existing) return existing;
    const made = randomBytes(32);
    writeFileDurably(join(this.dir, LOCAL_KEY_FILE), made);
    return made;
  }

  /** magic ‖ nonce ‖ AES-256-GCM(host-local key, plaintext, aad = magic ‖ host id) ‖ tag. */
  #seal(magic: Buffer, hostId: string, plaintext: Buffer): Buffer {
    const key = this.#localKey();
    try {
      const nonce = randomBytes(GCM_NONCE_LENGTH);
      const sealed = aesGcmEncrypt(key, nonce, plaintext, Buffer.concat([magic, Buffer.from(hostId)]));
      return Buffer.concat([magic, nonce, sealed.ciphertext, sealed.tag]);
    } finally {
      zeroize(key);
    }
  }

  #open(magic: Buffer, hostId: string, file: Buffer, name: string): Buffer {
    const key = this.#localKey();
    try {
      if (file.length < magic.length + GCM_NONCE_LENGTH + GCM_TAG_LENGTH || !file.subarray(0, magic.length).equals(magic)) {
        throw new UserError('BrokenState', `${join(this.dir, name)} is not a file this agent wrote.`);
      }
      const nonce = file.subarray(magic.length, magic.length + GCM_NONCE_LENGTH);
      return aesGcmDecrypt(key, nonce, file.subarray(magic.length + GCM_NONCE_LENGTH, file.length - GCM_TAG_LENGTH),
        file.subarray(file.length - GCM_TAG_LENGTH), Buffer.concat([magic, Buffer.from(hostId)]));
    } finally {
      zeroize(key);
    }
  }

  /** Encrypts and writes the cache (AES-256-GCM under the host-local key, bound to the host id). */
  readMeasurements(): MeasurementEvent[] | undefined {
    const text = this.#read(MEASUREMENTS_FILE);
    if (!text) return undefined;
    try {
      const parsed = JSON.parse(text.toString('utf8')) as unknown;
      return Array.isArray(parsed) ? parsed as MeasurementEvent[] : undefined;
    } catch {
      return undefined;
    }
  }

  writeMeasurements(events: MeasurementEvent[]): void {
    writeFileDurably(join(this.dir, MEASUREMENTS_FILE), JSON.stringify(events));
  }

  writeCache(hostId: string, plaintext: Buffer): void {
    writeFileDurably(join(this.dir, CACHE_FILE), this.#seal(CACHE_MAGIC, hostId, plaintext));
  }

  /** The decrypted cache, or undefined when there is none; a cache that does not decrypt is an error, never silently dropped. */
  readCache(hostId: string): Buffer | undefined {
    const file = this.#read(CACHE_FILE);
    return file ? this.#open(CACHE_MAGIC, hostId, file, CACHE_FILE) : undefined;
  }

  /** Revoked: the cache, the cache key, the identity and the attested certificate go; the directory stays, for a new enrolment. */
  wipe(): void {
    for (const name of [CACHE_FILE, LOCAL_KEY_FILE, KEY_RING_KEY_FILE, IDENTITY_KEY_FILE, IDENTITY_FILE, ATTESTED_CERTIFICATE_FILE, MEASUREMENTS_FILE,
      REQUEST_KEY_FILE, HOST_CLASSES_FILE]) {
      this.#shred(name);
    }
  }

  #shred(name: string): void {
    const path = join(this.dir, name);
    if (!existsSync(path)) return;
    // Overwritten in place (not replaced by a new file) before unlinking: the bytes do not linger in its blocks for a casual reader.
    const file = openSync(path, 'r+');
    try {
      writeSync(file, Buffer.alloc(fstatSync(file).size), 0);
      fsyncSync(file);
    } finally {
      closeSync(file);
    }
    rmSync(path, { force: true });
  }
}
