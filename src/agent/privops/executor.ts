// The one place a privileged-operation request is judged and run, whichever way it reached the host (the local socket
// or the server relay): verifies the signed request (signature over its JCS bytes, trusted signer, validity window,
// host binding, permission), records its nonce, runs it and seals the result to the requester's key.
// Must never let a result leave unsealed, nor run a request before its nonce is durably recorded.
import { readFile } from 'node:fs/promises';
import {
  CertificateFormatError, certificatesFromPem, certificateThumbprint, detachedJwsHeader, importSignerCertificateKey, PrivopKeyError, revocationListDer, RunningSha256,
  validateCertificatePath, verifyDetachedJws, verifyRevocationList, zeroize, type VerifiedRevocationList,
} from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  MAX_PRIVOP_WINDOW_SECONDS, parsePrivopRequestFile, PRIVOP_JWS_TYPE, type ParsedPrivopRequest, type PrivopResultPlaintext,
} from '../../shared/privop-wire.ts';
import { contentRecords, PRIVOP_RESULT_STREAM_VERSION, resultRecord, sealPrivopResultStream } from '../../shared/privop-result-stream.ts';
import type { AgentState } from '../state.ts';
import { PrivopAudit, type PrivopAuditEntry } from './audit.ts';
import { PrivopNonceStore } from './nonce-store.ts';
import { openRequestFile } from './request-decryption.ts';
import type { HostRequestKey } from './request-key.ts';
import { targetMismatch } from './target.ts';
import { StreamedOperationResult, type PreparedOperation, type PrivilegedOperations } from './operation.ts';
import { certifiedSigner, mayRequest, parameterOutsideLimits, type PrivopTrust, type TrustedCa, type TrustedSigner } from './trust.ts';

/** Clock difference tolerated between the requester and this host. */
export const PRIVOP_CLOCK_SKEW_MS = 60_000;

/** How the request reached this host: recorded in the audit. */
export type PrivopChannel = 'socket' | 'relay';

/** A request that passed every check and whose nonce is spent: run it once. */
export interface AcceptedPrivop {
  parsed: ParsedPrivopRequest;
  /**
   * Runs the operation; every outcome, failure included, comes back sealed to the request's result key, as the bytes
   * of the sealed result file in order (a consumer writes them out as they come: large results are not held whole).
   */
  run(): AsyncIterable<Buffer>;
}

const denied = (code: string, message: string) => new UserError(code, message, 403);

/** The signer's certificate (the first of the chain), or a refusal when it is unreadable. */
function leafCertificateOf(pems: string[]): Buffer {
  try {
    const [leaf] = certificatesFromPem(pems[0] as string);
    if (leaf) return leaf;
  } catch (error) {
    if (!(error instanceof CertificateFormatError)) throw error;
  }
  throw denied('PrivopCertificateInvalid', 'The signer certificate is unreadable.');
}

/** A CA's revocation list, read afresh and verified (signed by the CA, current at `at`); the reason it is unusable otherwise. */
async function currentRevocationList(ca: TrustedCa, at: Date): Promise<VerifiedRevocationList | string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(ca.crlPath as string);
  } catch (error) {
    return `its revocation list ${ca.crlPath} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  try {
    const list = await verifyRevocationList(revocationListDer(bytes), ca.certificateDer, at);
    // A list with no next update could be years old and still look current: it does not count as current.
    if (!list.nextUpdate) return 'its revocation list has no nextUpdate, so it cannot be judged current';
    return list;
  } catch (error) {
    return `its revocation list is unusable: ${(error as Error).message}`;
  }
}

/**
 * The signer a request's certificate chain (leaf first) makes: full RFC 5280 validation at `at` against each trusted CA in
 * turn, with the privop-signing EKU required, and revocation checked against the CA's list when the trust file names one
 * (signers issued directly by that CA; a CA without a list is trusted to be replaced rather than revoke).
 */
async function certifiedSignerOf(pems: string[], trust: PrivopTrust, at: Date): Promise<TrustedSigner> {
  if (trust.cas.length === 0) throw denied('PrivopSignerNotTrusted', 'This agent trusts no CA for signers of privileged operations.');
  let leaf: Buffer;
  let chain: Buffer[];
  try {
    [leaf, ...chain] = pems.flatMap((pem) => certificatesFromPem(pem)) as [Buffer, ...Buffer[]];
  } catch (error) {
    if (error instanceof CertificateFormatError) throw denied('PrivopCertificateInvalid', `The signer certificate is unreadable: ${error.message}`);
    throw error;
  }
  const reasons: string[] = [];
  for (const ca of trust.cas) {
    const revocationList = ca.crlPath ? await currentRevocationList(ca, at) : undefined;
    if (typeof revocationList === 'string') {
      reasons.push(`${ca.name}: ${revocationList}`);
      continue;
    }
    let result: Awaited<ReturnType<typeof validateCertificatePath>>;
    try {
      result = await validateCertificatePath({ certificateDer: leaf, chainDer: chain, anchorDer: ca.certificateDer, purpose: 'privop-signing',
        ...(revocationList ? { revocationList } : { unsafeSkipRevocation: true }), now: at });
    } catch (error) {
      if (error instanceof CertificateFormatError) throw denied('PrivopCertificateInvalid', `The signer certificate is unreadable: ${error.message}`);
      throw error;
    }
    if (!result.valid) {
      reasons.push(`${ca.name}: ${result.reason ?? 'invalid'}`);
      continue;
    }
    let key: Awaited<ReturnType<typeof importSignerCertificateKey>>;
    try {
      key = await importSignerCertificateKey(leaf);
    } catch (error) {
      if (error instanceof PrivopKeyError) throw denied('PrivopCertificateInvalid', `The signer certificate ${result.subject}: ${error.message}`);
      throw error;
    }
    return certifiedSigner(ca, result.subject, key);
  }
  throw denied('PrivopCertificateInvalid', `The signer certificate is not valid for signing privileged operations: ${reasons.join('; ')}.`);
}

export class PrivopExecutor {
  readonly #state: AgentState;
  readonly #trust?: PrivopTrust;
  readonly #registry: PrivilegedOperations;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #audit: PrivopAudit;
  readonly #nonces?: PrivopNonceStore;
  readonly #requestKey?: HostRequestKey;

  constructor(options: { state: AgentState; trust?: PrivopTrust; registry: PrivilegedOperations; logger: Logger; now?: () => Date;
    /** Opens encrypted requests and knows the host's classes (class targets); absent: neither is accepted. */
    requestKey?: HostRequestKey }) {
    this.#state = options.state;
    this.#requestKey = options.requestKey;
    this.#trust = options.trust;
    this.#registry = options.registry;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
    this.#audit = new PrivopAudit(options.state.dir, options.logger);
    // Opened at start: a broken replay record stops the agent instead of reopening replays.
    this.#nonces = options.trust ? new PrivopNonceStore(options.state.dir, PRIVOP_CLOCK_SKEW_MS) : undefined;
  }

  async #verify(parsed: ParsedPrivopRequest, trust: PrivopTrust, at: Date, hostId: string | undefined, entry: PrivopAuditEntry): Promise<TrustedSigner> {
    const { request, file } = parsed;
    const header = detachedJwsHeader(file.Signature);
    if (!header) throw denied('PrivopBadSignature', 'The signature is not a detached compact JWS.');
    let signer: TrustedSigner | undefined;
    if (file.Certificates?.length) {
      // The certificate a request is judged under is the one its signature names: a courier cannot swap in another
      // (an older, broader one for the same key) nor drop it to fall back to a pinned entry.
      if (header.x5tS256 !== certificateThumbprint(leafCertificateOf(file.Certificates))) {
        throw denied('PrivopBadSignature', 'The signature does not name the attached signer certificate (x5t#S256).');
      }
      signer = await certifiedSignerOf(file.Certificates, trust, at);
    } else {
      if (header.x5tS256 !== undefined) throw denied('PrivopBadSignature', 'The signature names a signer certificate (x5t#S256) the request does not carry.');
      signer = header.kid === undefined ? undefined : trust.signers.get(header.kid);
      if (!signer) throw denied('PrivopSignerNotTrusted', `No trusted signer has key id ${header.kid ?? '(none)'}.`);
    }
    if (!(await verifyDetachedJws(signer.key, file.Signature, parsed.canonical, PRIVOP_JWS_TYPE))) {
      throw denied('PrivopBadSignature', `The signature does not verify under ${signer.name}'s key: the request was altered or signed by another key.`);
    }
    // Verified: later refusals are recorded against this signer.
    Object.assign(entry, { Signer: signer.name, SignerKeyId: signer.keyId });
    const notBefore = Date.parse(request.NotBefore);
    const notAfter = Date.parse(request.NotAfter);
    if (notAfter <= notBefore) throw denied('PrivopInvalidWindow', 'NotAfter is not after NotBefore.');
    if (notAfter - notBefore > MAX_PRIVOP_WINDOW_SECONDS * 1000) {
      throw denied('PrivopInvalidWindow', `The validity window is longer than ${MAX_PRIVOP_WINDOW_SECONDS / 86_400} days.`);
    }
    if (at.getTime() < notBefore - PRIVOP_CLOCK_SKEW_MS) throw denied('PrivopNotYetValid', `The request is valid from ${request.NotBefore}.`);
    if (at.getTime() > notAfter + PRIVOP_CLOCK_SKEW_MS) throw denied('PrivopExpired', `The request expired at ${request.NotAfter}.`);
    // Class membership (a state-file read) matters only to class targets.
    let classes: readonly string[] = [];
    if ('Class' in request.Target) {
      const membership = this.#requestKey?.membership() ?? { classes: [] };
      // Membership is judged offline from what the server last said: not from a memory older than any request may live.
      const received = membership.receivedAt;
      if (!received || at.getTime() - received.getTime() > MAX_PRIVOP_WINDOW_SECONDS * 1000) {
        throw denied('PrivopWrongHost', `This host's classes were last confirmed ${received ? `at ${received.toISOString()}` : 'never'}: `
          + 'it judges no class request until its agent connects to the server again.');
      }
      classes = membership.classes;
    }
    const wrongHost = targetMismatch(request.Target, { hostId, classes });
    if (wrongHost) throw denied('PrivopWrongHost', wrongHost);
    if (!mayRequest(signer, request.Operation)) {
      throw denied('PrivopNotPermitted', `Signer ${signer.name} may not request ${request.Operation}.`);
    }
    const outside = parameterOutsideLimits(signer, request.Operation, request.Parameters);
    if (outside) throw denied('PrivopNotPermitted', `Signer ${signer.name} may not request ${request.Operation} with these parameters: ${outside}.`);
    return signer;
  }

  /**
   * Judges a request file (parsed JSON) that came by `channel`: every refusal is audited and thrown as a UserError;
   * an accepted request has its nonce spent and is audited before it is returned to be run.
   */
  async accept(requestFile: unknown, channel: PrivopChannel): Promise<AcceptedPrivop> {
    const at = this.#now();
    const entry: PrivopAuditEntry = { Time: at.toISOString(), Outcome: 'refused', Channel: channel };
    let parsed: ParsedPrivopRequest;
    let prepared: PreparedOperation;
    // Read once per request: the host id never changes, and every check below needs it.
    const hostId = this.#state.identity()?.HostId;
    try {
      if (!this.#trust || !this.#nonces) {
        throw new UserError('PrivopNotConfigured', 'This agent trusts no signer of privileged operations (start it with --privop-trust FILE).', 403);
      }
      parsed = parsePrivopRequestFile(await openRequestFile(requestFile, { hostId, requestKey: this.#requestKey }, entry));
      const { request } = parsed;
      Object.assign(entry, { RequestDigest: parsed.digest.toString('base64url'), Operation: request.Operation,
        ParameterNames: Object.keys(request.Parameters).sort(), Target: request.Target, Requester: request.Requester, Nonce: request.Nonce,
        NotAfter: request.NotAfter });
      await this.#verify(parsed, this.#trust, at, hostId, entry);
      prepared = this.#registry.prepare(request.Operation, request.Parameters);
      if (!this.#nonces.use(request.Nonce, new Date(request.NotAfter), at)) {
        throw denied('PrivopReplay', 'This request (its nonce) was used already.');
      }
      entry.Outcome = 'accepted';
      this.#audit.record(entry);
    } catch (error) {
      if (error instanceof UserError) Object.assign(entry, { Code: error.code, Reason: error.message });
      else Object.assign(entry, { Code: 'InternalError' });
      this.#audit.record(entry);
      throw error;
    }
    return { parsed, run: () => this.#run(parsed, prepared, entry) };
  }

  /**
   * Runs the operation while sealing its output: the sealed bytes are yielded as they are made, and the operation's
   * bulk content is pulled only as fast as they are consumed. A consumer that stops early (the courier went away)
   * ends the operation; the nonce stays spent and the audit records the abort.
   */
  async *#run(parsed: ParsedPrivopRequest, prepared: PreparedOperation, entry: PrivopAuditEntry): AsyncGenerator<Buffer> {
    const { request, digest } = parsed;
    const identity = this.#state.identity();
    if (!identity) throw new UserError('NotEnrolled', 'This agent has no identity to sign the result with.', 500);
    const keys = this.#state.privateKeys();
    zeroize(keys.keyRingKey);
    const startedAt = new Date().toISOString();
    const fail = (error: unknown) => {
      const failure = error instanceof UserError ? { Code: error.code, Message: error.message } : { Code: 'OperationFailed', Message: 'The operation failed on the host.' };
      if (!(error instanceof UserError)) this.#logger.error({ err: error, operation: request.Operation }, 'privileged operation failed');
      this.#audit.record({ ...entry, Time: new Date().toISOString(), Outcome: 'failed', Code: failure.Code });
      return failure;
    };
    const envelope = { Version: PRIVOP_RESULT_STREAM_VERSION, RequestDigest: digest.toString('base64url'), HostId: identity.HostId,
      Operation: request.Operation, StartedAt: startedAt };
    async function* plaintext(): AsyncGenerator<Buffer> {
      let outcome: Pick<PrivopResultPlaintext, 'Result' | 'Error' | 'Content'>;
      try {
        const output = await prepared();
        if (output instanceof StreamedOperationResult) {
          const content = new RunningSha256();
          for await (const piece of output.content) {
            content.update(piece);
            yield* contentRecords(piece);
            // Sealed by now (the sealer copies what it is given before asking for more): process memory does not linger here.
            zeroize(piece);
          }
          outcome = { Result: output.describe(), ...(content.bytes ? { Content: { Bytes: content.bytes, Sha256: content.digest().toString('hex') } } : {}) };
        } else {
          outcome = { Result: output };
        }
      } catch (error) {
        // Content already sent is then dropped by `open`, which reports the error.
        outcome = { Error: fail(error) };
      }
      yield resultRecord({ ...envelope, CompletedAt: new Date().toISOString(), ...outcome });
    }
    let finished = false;
    try {
      yield* sealPrivopResultStream({ resultKey: Buffer.from(request.ResultKey, 'base64url'), digest, hostId: identity.HostId,
        hostCertificatePem: identity.Certificate, hostKeyPem: keys.identityKeyPem, plaintext: plaintext() });
      finished = true;
    } finally {
      if (!finished) this.#audit.record({ ...entry, Time: new Date().toISOString(), Outcome: 'aborted', Code: 'PrivopResultNotDelivered' });
    }
  }
}
