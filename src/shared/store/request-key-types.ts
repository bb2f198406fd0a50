// Records of sealed privileged operations the server keeps: each host's request key and its certificate.
// Must never hold a private key: the host keeps its own.

export interface HostRequestKeyRecord {
  hostId: string;
  accountId: string;
  /** Raw X25519 public key (32 bytes). */
  publicKey: Buffer;
  /** base64url SHA-256 of publicKey: what encrypted requests name. */
  keyId: string;
  /** DER, issued by the account's fleet CA. */
  certificateDer: Buffer;
  serial: string;
  notAfter: Date;
  /** When the host first registered this key. */
  registeredAt: Date;
  /** When the current certificate was issued. */
  certifiedAt: Date;
}

export interface RequestKeyStore {
  getRequestKey(hostId: string): Promise<HostRequestKeyRecord | undefined>;
  /** Writes the host's request key (replacing any other); false when the host no longer exists. */
  putRequestKey(record: HostRequestKeyRecord): Promise<boolean>;
}
