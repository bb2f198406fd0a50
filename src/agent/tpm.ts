// The host's TPM 2.0 through tpm2-tools: EK and AK provisioning, credential activation, PCRs, quotes and PCR-bound sealing.
// Must never run a shell, put secret bytes in arguments or error messages, or leave transient objects and sessions loaded in the TPM.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { encodeCredentialFile, parseTpmPublic, TpmFormatError, TPMA_OBJECT, zeroize } from '../shared/crypto/index.ts';

/** Where provision() keeps its keys: the TCG EK handle and the next one for the AK (TCG handle registry). */
export const EK_HANDLE = 0x81010001;
export const AK_HANDLE = 0x81010002;
/** TCG EK Credential Profile: the RSA 2048 EK certificate. */
export const EK_CERTIFICATE_NV_INDEX = 0x01c00002;

const PCR_BANK = 'sha256';
const PCR_DIGEST_LENGTH = 32;
const PCR_COUNT = 24;
/** MAX_SYM_DATA: what a sealed data object holds. */
const MAX_SEALED_BYTES = 128;
/** TPM2B_DATA bound for qualifyingData. */
const MAX_NONCE_BYTES = 64;
const SEALED_BLOB_VERSION = 1;
/**
 * The owner-hierarchy primary sealed objects live under, re-created on every use: the same
 * template over the same seed gives the same key, so nothing needs to stay persistent for sealing.
 * ECC because a TPM derives it in milliseconds where an RSA primary can take seconds.
 */
const STORAGE_PRIMARY_ARGS = ['-C', 'o', '-g', 'sha256', '-G', 'ecc256:aes128cfb',
  '-a', 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda'];
/** Policy only: no userWithAuth, so the empty auth value cannot unseal it. */
const SEALED_OBJECT_ATTRIBUTES = 'fixedtpm|fixedparent|adminwithpolicy|noda';

const TOOLS = [
  'tpm2_getcap', 'tpm2_readpublic', 'tpm2_createek', 'tpm2_createak', 'tpm2_evictcontrol', 'tpm2_flushcontext', 'tpm2_nvread',
  'tpm2_startauthsession', 'tpm2_policysecret', 'tpm2_activatecredential', 'tpm2_pcrreset', 'tpm2_pcrextend', 'tpm2_pcrread',
  'tpm2_quote', 'tpm2_createprimary', 'tpm2_createpolicy', 'tpm2_create', 'tpm2_load', 'tpm2_policypcr', 'tpm2_unseal',
] as const;
type Tool = typeof TOOLS[number];

/** A tpm2-tools command failed. Carries the tool's own diagnosis, never the command's data. */
export class TpmCommandError extends Error {
  readonly code = 'TpmCommandError';
  /** The TPM response code when the tool reported one (e.g. 0x99d: a policy check failed). */
  readonly responseCode?: number;
  constructor(readonly tool: string, readonly exitCode: number, readonly detail: string) {
    super(`${tool} failed (exit ${exitCode}): ${detail}`);
    this.name = 'TpmCommandError';
    const code = /\((0x[0-9a-f]+)\)/i.exec(detail)?.[1];
    if (code !== undefined) this.responseCode = Number.parseInt(code, 16);
  }
}

/** The TPM holds something other than what provision() expects at one of its handles. */
export class TpmStateError extends Error {
  readonly code = 'TpmStateError';
  constructor(message: string) {
    super(message);
    this.name = 'TpmStateError';
  }
}

export type AkAlgorithm = 'rsa2048-rsassa-sha256' | 'ecc-p256-ecdsa-sha256';

export interface TpmOptions {
  /** TCTI configuration, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`. */
  tcti: string;
  ekHandle?: number;
  akHandle?: number;
  /** Used only when provision() creates the AK. RSA is the default: every TPM 2.0 has it. */
  akAlgorithm?: AkAlgorithm;
  /** Where the tools are; by default they are looked up on PATH. */
  toolsDir?: string;
  timeoutMs?: number;
}

export interface TpmProvisioning {
  /** TPM2B_PUBLIC. */
  ekPublic: Buffer;
  /** DER, from the EK certificate NV index when the manufacturer wrote one. */
  ekCertificate?: Buffer;
  /** TPM2B_PUBLIC. */
  akPublic: Buffer;
  /** nameAlg || H(TPMT_PUBLIC): what credentials are made for. */
  akName: Buffer;
}

export interface TpmQuote {
  /** TPMS_ATTEST as the TPM signed it. */
  attest: Buffer;
  /** TPMT_SIGNATURE. */
  signature: Buffer;
}

export type TpmAvailability = { available: true; version: string } | { available: false; reason: string };

const AK_ARGS: Record<AkAlgorithm, string[]> = {
  'rsa2048-rsassa-sha256': ['-G', 'rsa', '-g', 'sha256', '-s', 'rsassa'],
  'ecc-p256-ecdsa-sha256': ['-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa'],
};

const hexHandle = (handle: number) => `0x${handle.toString(16)}`;

function requirePcrIndices(pcrs: readonly number[], what: string): number[] {
  if (pcrs.length === 0) throw new RangeError(`${what}: select at least one PCR`);
  for (const pcr of pcrs) {
    if (!Number.isInteger(pcr) || pcr < 0 || pcr >= PCR_COUNT) throw new RangeError(`${what}: PCR ${pcr} is not 0 to ${PCR_COUNT - 1}`);
  }
  return [...new Set(pcrs)].sort((a, b) => a - b);
}

function pcrList(sorted: readonly number[]): string {
  return `${PCR_BANK}:${sorted.join(',')}`;
}

/** The line that says what went wrong: the tool's own ERROR line if there is one. */
function diagnosis(stderr: string): string {
  const lines = stderr.split('\n').map((line) => line.trim()).filter(Boolean);
  const line = lines.find((entry) => entry.startsWith('ERROR')) ?? lines[0] ?? 'no diagnostic output';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** Cuts a DER certificate out of an NV index, which manufacturers may pad past its end. */
function trimDer(bytes: Buffer): Buffer {
  if (bytes.length < 2 || bytes[0] !== 0x30) return bytes;
  const first = bytes[1];
  if (first < 0x80) return 2 + first <= bytes.length ? bytes.subarray(0, 2 + first) : bytes;
  const count = first & 0x7f;
  if (count === 0 || count > 4 || 2 + count > bytes.length) return bytes;
  let length = 0;
  for (let index = 0; index < count; index += 1) length = length * 256 + bytes[2 + index];
  const total = 2 + count + length;
  return total <= bytes.length ? bytes.subarray(0, total) : bytes;
}

function encodeSealedBlob(pcrs: readonly number[], sealedPublic: Buffer, sealedPrivate: Buffer): Buffer {
  return Buffer.concat([Buffer.from([SEALED_BLOB_VERSION, pcrs.length, ...pcrs]), sealedPublic, sealedPrivate]);
}

function decodeSealedBlob(blob: Buffer): { pcrs: number[]; sealedPublic: Buffer; sealedPrivate: Buffer } {
  if (!Buffer.isBuffer(blob) || blob.length < 2) throw new TpmFormatError('sealed blob is truncated');
  if (blob[0] !== SEALED_BLOB_VERSION) throw new TpmFormatError(`sealed blob version ${blob[0]} is not supported`);
  const count = blob[1];
  let offset = 2 + count;
  if (count === 0 || offset > blob.length) throw new TpmFormatError('sealed blob: PCR list is empty or truncated');
  const pcrs = [...blob.subarray(2, offset)];
  if (pcrs.some((pcr) => pcr >= PCR_COUNT)) throw new TpmFormatError('sealed blob: PCR index out of range');
  const sized = (what: string): Buffer => {
    if (offset + 2 > blob.length) throw new TpmFormatError(`sealed blob: ${what} is truncated`);
    const end = offset + 2 + blob.readUInt16BE(offset);
    if (end > blob.length) throw new TpmFormatError(`sealed blob: ${what} is truncated`);
    const bytes = blob.subarray(offset, end);
    offset = end;
    return bytes;
  };
  const sealedPublic = sized('TPM2B_PUBLIC');
  const sealedPrivate = sized('TPM2B_PRIVATE');
  if (offset !== blob.length) throw new TpmFormatError('sealed blob has trailing bytes');
  return { pcrs, sealedPublic, sealedPrivate };
}

/**
 * One TPM, used by one agent. Commands are serialised: without a resource manager the TPM has
 * room for about three loaded objects, and each method flushes what its commands left behind,
 * which would pull objects from under a concurrent command. The flushes also take away objects
 * another program loaded, so a TPM without a resource manager must not be shared.
 */
export class Tpm {
  readonly #options: Required<Omit<TpmOptions, 'toolsDir'>> & { toolsDir?: string };
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: TpmOptions) {
    if (typeof options.tcti !== 'string' || options.tcti.length === 0) throw new RangeError('a TCTI is required');
    this.#options = {
      tcti: options.tcti, ekHandle: options.ekHandle ?? EK_HANDLE, akHandle: options.akHandle ?? AK_HANDLE,
      akAlgorithm: options.akAlgorithm ?? 'rsa2048-rsassa-sha256', timeoutMs: options.timeoutMs ?? 60_000, toolsDir: options.toolsDir,
    };
  }

  /** Whether every tool this class runs is installed, and tpm2-tools' version. */
  static async available(toolsDir?: string): Promise<TpmAvailability> {
    const directories = toolsDir !== undefined ? [toolsDir] : (process.env.PATH ?? '').split(delimiter).filter(Boolean);
    const missing = TOOLS.filter((tool) => !directories.some((directory) => {
      try {
        accessSync(join(directory, tool), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    }));
    if (missing.length === TOOLS.length) return { available: false, reason: 'tpm2-tools not found' };
    if (missing.length > 0) return { available: false, reason: `tpm2-tools incomplete (missing ${missing.join(', ')})` };
    const probe = new Tpm({ tcti: 'none', toolsDir });
    try {
      const output = (await probe.#run('tpm2_getcap', ['--version'])).toString('utf8');
      return { available: true, version: /version="([^"]+)"/.exec(output)?.[1] ?? output.trim() };
    } catch (error) {
      return { available: false, reason: (error as Error).message };
    }
  }

  /**
   * Makes sure the EK and an AK are persistent and returns their public parts. Re-uses what is
   * already at the handles, so the AK (and what a verifier trusts about it) survives restarts.
   */
  async provision(): Promise<TpmProvisioning> {
    return this.#exclusive(() => this.#withWorkspace(async (dir) => {
      const { ekHandle, akHandle } = this.#options;
      const persistent = await this.#persistentHandles();
      const ekPath = join(dir, 'ek.pub');
      if (persistent.has(ekHandle)) {
        await this.#run('tpm2_readpublic', ['-c', hexHandle(ekHandle), '-o', ekPath, '-f', 'tss']);
      } else {
        // Default template (TCG EK Credential Profile, RSA 2048 / policy A), so it matches the EK certificate.
        await this.#withFlush(['-t'], () => this.#run('tpm2_createek', ['-c', hexHandle(ekHandle), '-G', 'rsa', '-u', ekPath, '-f', 'tss']));
      }
      const ekPublic = await readFile(ekPath);
      const ek = this.#parse(ekPublic, 'EK', ekHandle);
      const decrypting = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt;
      if ((ek.objectAttributes & decrypting) !== decrypting || ek.type !== 'rsa') {
        throw new TpmStateError(`persistent handle ${hexHandle(ekHandle)} holds a key that is not an RSA restricted decryption key (not an EK)`);
      }
      const akPath = join(dir, 'ak.pub');
      if (!persistent.has(akHandle)) {
        const context = join(dir, 'ak.ctx');
        await this.#withFlush(['-t', '-l', '-s'], () => this.#run('tpm2_createak',
          ['-C', hexHandle(ekHandle), '-c', context, ...AK_ARGS[this.#options.akAlgorithm], '-u', join(dir, 'new-ak.pub'), '-f', 'tss']));
        await this.#withFlush(['-t'], () => this.#run('tpm2_evictcontrol', ['-C', 'o', '-c', context, hexHandle(akHandle)]));
      }
      await this.#run('tpm2_readpublic', ['-c', hexHandle(akHandle), '-o', akPath, '-f', 'tss']);
      const akPublic = await readFile(akPath);
      const ak = this.#parse(akPublic, 'AK', akHandle);
      const signing = TPMA_OBJECT.restricted | TPMA_OBJECT.sign | TPMA_OBJECT.fixedTPM;
      if ((ak.objectAttributes & signing) !== signing) {
        throw new TpmStateError(`persistent handle ${hexHandle(akHandle)} holds a key that is not a restricted signing key fixed to the TPM (not an AK)`);
      }
      return { ekPublic, ekCertificate: await this.#readEkCertificate(dir), akPublic, akName: ak.name };
    }));
  }

  /**
   * TPM2_ActivateCredential with the AK as the credentialed object and the EK as the decryption
   * key: returns the verifier's secret only if the credential was made for this AK's name and
   * this EK. The EK (policy A) is authorised with PolicySecret over the endorsement hierarchy.
   */
  async activateCredential(credentialBlob: Buffer, encryptedSecret: Buffer): Promise<Buffer> {
    const file = encodeCredentialFile(credentialBlob, encryptedSecret);
    return this.#exclusive(() => this.#withWorkspace(async (dir) => {
      const credentialPath = join(dir, 'credential');
      const secretPath = join(dir, 'secret');
      const session = join(dir, 'session.ctx');
      await writeFile(credentialPath, file, { mode: 0o600 });
      return this.#withFlush(['-t', '-l', '-s'], async () => {
        await this.#run('tpm2_startauthsession', ['--policy-session', '-S', session]);
        await this.#run('tpm2_policysecret', ['-S', session, '-c', 'e']);
        // The tool also prints the secret in hex ("certinfodata:") on stdout, whatever -o says.
        zeroize(await this.#run('tpm2_activatecredential', ['-c', hexHandle(this.#options.akHandle), '-C', hexHandle(this.#options.ekHandle),
          '-i', credentialPath, '-o', secretPath, '-P', `session:${session}`]));
        const secret = await readFile(secretPath);
        // The secret is a one-time challenge; scrub the file's copy before the directory goes.
        await writeFile(secretPath, Buffer.alloc(secret.length));
        return secret;
      });
    }));
  }

  /** Resets a resettable PCR (16 and 23 at locality 0). */
  async resetPcr(index: number): Promise<void> {
    const [pcr] = requirePcrIndices([index], 'resetPcr');
    return this.#exclusive(async () => { await this.#run('tpm2_pcrreset', [String(pcr)]); });
  }

  /** Extends a SHA-256 digest into the PCR's sha256 bank. */
  async extendPcr(index: number, sha256Digest: Buffer): Promise<void> {
    const [pcr] = requirePcrIndices([index], 'extendPcr');
    if (!Buffer.isBuffer(sha256Digest) || sha256Digest.length !== PCR_DIGEST_LENGTH) throw new RangeError('extendPcr: the digest must be 32 bytes (SHA-256)');
    return this.#exclusive(async () => { await this.#run('tpm2_pcrextend', [`${pcr}:${PCR_BANK}=${sha256Digest.toString('hex')}`]); });
  }

  /** The sha256 bank's values, in the order asked for. */
  async readPcrs(indices: number[]): Promise<Buffer[]> {
    const sorted = requirePcrIndices(indices, 'readPcrs');
    return this.#exclusive(() => this.#withWorkspace(async (dir) => {
      const path = join(dir, 'pcrs');
      await this.#run('tpm2_pcrread', [pcrList(sorted), '-o', path]);
      const values = await readFile(path);
      if (values.length !== sorted.length * PCR_DIGEST_LENGTH) {
        throw new TpmStateError(`tpm2_pcrread returned ${values.length} bytes for ${sorted.length} PCRs; is the sha256 bank active?`);
      }
      const byIndex = new Map(sorted.map((pcr, position) => [pcr, values.subarray(position * PCR_DIGEST_LENGTH, (position + 1) * PCR_DIGEST_LENGTH)]));
      return indices.map((pcr) => Buffer.from(byIndex.get(pcr)!));
    }));
  }

  /** A quote by the AK over the sha256 bank's selected PCRs, with the verifier's nonce as qualifying data. */
  async quote(nonce: Buffer, pcrs: number[]): Promise<TpmQuote> {
    const sorted = requirePcrIndices(pcrs, 'quote');
    if (!Buffer.isBuffer(nonce) || nonce.length === 0 || nonce.length > MAX_NONCE_BYTES) {
      throw new RangeError(`quote: the nonce must be 1 to ${MAX_NONCE_BYTES} bytes`);
    }
    return this.#exclusive(() => this.#withWorkspace(async (dir) => {
      const attestPath = join(dir, 'attest');
      const signaturePath = join(dir, 'signature');
      await this.#run('tpm2_quote', ['-c', hexHandle(this.#options.akHandle), '-l', pcrList(sorted), '-q', nonce.toString('hex'),
        '-m', attestPath, '-s', signaturePath, '-g', 'sha256']);
      return { attest: await readFile(attestPath), signature: await readFile(signaturePath) };
    }));
  }

  /**
   * Seals data (1 to 128 bytes) under the owner-hierarchy storage primary with a policy on the
   * selected PCRs' current sha256 values. The blob is useless on another TPM or once a PCR moved.
   */
  async seal(data: Buffer, pcrs: number[]): Promise<Buffer> {
    const sorted = requirePcrIndices(pcrs, 'seal');
    if (!Buffer.isBuffer(data) || data.length === 0 || data.length > MAX_SEALED_BYTES) {
      throw new RangeError(`seal: data must be 1 to ${MAX_SEALED_BYTES} bytes`);
    }
    return this.#exclusive(() => this.#withWorkspace(async (dir) => {
      const primary = join(dir, 'primary.ctx');
      const policy = join(dir, 'policy');
      const sealedPublic = join(dir, 'sealed.pub');
      const sealedPrivate = join(dir, 'sealed.priv');
      await this.#createStoragePrimary(primary);
      // A trial session computes the digest and is left loaded by the tool.
      await this.#withFlush(['-l'], () => this.#run('tpm2_createpolicy', ['--policy-pcr', '-l', pcrList(sorted), '-L', policy]));
      // The data goes in on stdin, so it is never in an argument or a file.
      await this.#withFlush(['-t'], () => this.#run('tpm2_create', ['-C', primary, '-g', 'sha256', '-u', sealedPublic, '-r', sealedPrivate,
        '-L', policy, '-a', SEALED_OBJECT_ATTRIBUTES, '-i', '-'], data));
      return encodeSealedBlob(sorted, await readFile(sealedPublic), await readFile(sealedPrivate));
    }));
  }

  /** Unseals a blob from seal(); fails with TpmCommandError (response code 0x99d) once a selected PCR changed. */
  async unseal(blob: Buffer): Promise<Buffer> {
    const { pcrs, sealedPublic, sealedPrivate } = decodeSealedBlob(blob);
    return this.#exclusive(() => this.#withWorkspace(async (dir) => {
      const primary = join(dir, 'primary.ctx');
      const sealed = join(dir, 'sealed.ctx');
      const session = join(dir, 'session.ctx');
      await writeFile(join(dir, 'sealed.pub'), sealedPublic);
      await writeFile(join(dir, 'sealed.priv'), sealedPrivate);
      return this.#withFlush(['-t', '-l', '-s'], async () => {
        await this.#createStoragePrimary(primary);
        await this.#withFlush(['-t'], () => this.#run('tpm2_load',
          ['-C', primary, '-u', join(dir, 'sealed.pub'), '-r', join(dir, 'sealed.priv'), '-c', sealed]));
        await this.#run('tpm2_startauthsession', ['--policy-session', '-S', session]);
        await this.#run('tpm2_policypcr', ['-S', session, '-l', pcrList(pcrs)]);
        // Without -o the tool writes the data to stdout and nowhere else.
        return this.#run('tpm2_unseal', ['-c', sealed, '-p', `session:${session}`]);
      });
    }));
  }

  async #createStoragePrimary(path: string): Promise<void> {
    // The saved context stays usable after the flush; each later command loads its own copy.
    await this.#withFlush(['-t'], () => this.#run('tpm2_createprimary', [...STORAGE_PRIMARY_ARGS, '-c', path]));
  }

  async #persistentHandles(): Promise<Set<number>> {
    const output = (await this.#run('tpm2_getcap', ['handles-persistent'])).toString('utf8');
    return new Set([...output.matchAll(/0x([0-9a-f]+)/gi)].map((match) => Number.parseInt(match[1], 16)));
  }

  async #readEkCertificate(dir: string): Promise<Buffer | undefined> {
    // tpm2_nvreadpublic crashes on an undefined index (tpm2-tools 5.4), so ask the capability list first.
    const output = (await this.#run('tpm2_getcap', ['handles-nv-index'])).toString('utf8');
    const indices = new Set([...output.matchAll(/0x([0-9a-f]+)/gi)].map((match) => Number.parseInt(match[1], 16)));
    if (!indices.has(EK_CERTIFICATE_NV_INDEX)) return undefined;
    const path = join(dir, 'ek-certificate');
    // Authorised by the index itself (AUTHREAD, empty auth), so an owner password does not matter.
    await this.#run('tpm2_nvread', ['-C', hexHandle(EK_CERTIFICATE_NV_INDEX), '-o', path, hexHandle(EK_CERTIFICATE_NV_INDEX)]);
    return Buffer.from(trimDer(await readFile(path)));
  }

  #parse(bytes: Buffer, what: string, handle: number): ReturnType<typeof parseTpmPublic> {
    try {
      return parseTpmPublic(bytes);
    } catch (error) {
      throw new TpmStateError(`the ${what} at ${hexHandle(handle)} has a public area this verifier cannot use: ${(error as Error).message}`);
    }
  }

  /** Runs work, then flushes the kinds of handles it may have left loaded, whether it worked or not. */
  async #withFlush<T>(kinds: Array<'-t' | '-l' | '-s'>, work: () => Promise<T>): Promise<T> {
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: await work() };
    } catch (error) {
      outcome = { error };
    }
    let flushError: unknown;
    // One kind per call: tpm2_flushcontext -t -l -s acts on part of it and then fails (5.4).
    for (const kind of kinds) {
      try {
        await this.#run('tpm2_flushcontext', [kind]);
      } catch (error) {
        flushError ??= error;
      }
    }
    // The command's own failure says more than a flush failing after it.
    if ('error' in outcome) throw outcome.error;
    if (flushError !== undefined) throw flushError;
    return outcome.value;
  }

  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(work, work);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #withWorkspace<T>(work: (dir: string) => Promise<T>): Promise<T> {
    // mkdtemp makes the directory 0700: the files inside are the commands' inputs and outputs.
    const dir = await mkdtemp(join(tmpdir(), 'trustplane-tpm-'));
    try {
      return await work(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  #run(tool: Tool, args: string[], input?: Buffer): Promise<Buffer> {
    const file = this.#options.toolsDir !== undefined ? join(this.#options.toolsDir, tool) : tool;
    // TSS2_LOG=all+none keeps the ESYS layer quiet so the tool's own ERROR line is the first one.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', TPM2TOOLS_TCTI: this.#options.tcti, TSS2_LOG: 'all+none' };
    return new Promise((resolve, reject) => {
      const child = execFile(file, args, { env, encoding: 'buffer', timeout: this.#options.timeoutMs, maxBuffer: 4 * 1024 * 1024, windowsHide: true },
        (error, stdout, stderr) => {
          if (!error) {
            resolve(stdout);
            return;
          }
          zeroize(stdout);
          const exitCode = typeof error.code === 'number' ? error.code : -1;
          const detail = error.killed ? `timed out after ${this.#options.timeoutMs} ms`
            : exitCode === -1 ? `could not run (${String(error.code ?? error.signal ?? 'unknown')})` : diagnosis(stderr.toString('utf8'));
          reject(new TpmCommandError(tool, exitCode, detail));
        });
      // Without input, close stdin so a tool that reads it sees end of file rather than hanging.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input);
    });
  }
}
