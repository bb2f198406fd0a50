// Throwaway SoftHSM2 tokens for tests of the PKCS#11 crypto module, each in its own temporary
// directory and configuration. Never touches the system's token directory (/var/lib/softhsm).
import { accessSync, constants, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run, skipOrFail } from './exec.ts';
import { makeTempDir } from './server.ts';

/** Debian's softhsm2 package. */
export const SOFTHSM_LIBRARY_PATH = '/usr/lib/softhsm/libsofthsm2.so';
export const SOFTHSM_UTIL_PATH = '/usr/bin/softhsm2-util';

export type SoftHsmLocation = { libraryPath: string; utilPath: string; version: string; skip?: undefined } | { skip: string };

/**
 * Finds SoftHSM2 (the tool and the PKCS#11 library). When either is missing the tests skip with
 * the reason, unless TRUSTPLANE_REQUIRE_ALL=1, where a missing SoftHSM2 is a failure.
 */
export async function locateSoftHsm(): Promise<SoftHsmLocation> {
  let problem: string | undefined;
  let version = '';
  try {
    accessSync(SOFTHSM_UTIL_PATH, constants.X_OK);
    accessSync(SOFTHSM_LIBRARY_PATH, constants.R_OK);
    const result = await run(SOFTHSM_UTIL_PATH, ['--version'], { env: { PATH: process.env.PATH } });
    version = result.stdout.trim();
    if (result.code !== 0) problem = `${SOFTHSM_UTIL_PATH} --version failed (${result.code}): ${result.stderr.trim()}`;
  } catch {
    problem = `SoftHSM2 not found (${SOFTHSM_UTIL_PATH} and ${SOFTHSM_LIBRARY_PATH}; install Debian's softhsm2)`;
  }
  if (problem === undefined) return { libraryPath: SOFTHSM_LIBRARY_PATH, utilPath: SOFTHSM_UTIL_PATH, version };
  return skipOrFail(problem);
}

export interface SoftHsmTokenOptions {
  label?: string;
  pin?: string;
  soPin?: string;
}

export interface SoftHsmToken {
  /** Path of this token's softhsm2.conf. */
  conf: string;
  /** The temporary directory holding the conf and the token directory. */
  dir: string;
  label: string;
  pin: string;
  soPin: string;
  libraryPath: string;
  /** What a process needs so the library finds this token (read at C_Initialize). */
  env: { SOFTHSM2_CONF: string };
  /**
   * Takes the token away from under a running process by moving its directory aside. SoftHSM2
   * notices on the next use of any of its objects (CKR_OBJECT_HANDLE_INVALID) and then treats the
   * slot as dead until the library is finalised and initialised again.
   */
  remove(): void;
  /** Puts a removed token back where it was. */
  restore(): void;
  /** Deletes the token for good with `softhsm2-util --delete-token`. */
  destroy(): Promise<void>;
  /** Removes the temporary directory and everything in it. */
  dispose(): void;
}

/** Makes a fresh SoftHSM2 token in its own temporary directory. */
export async function createSoftHsmToken(options: SoftHsmTokenOptions = {}): Promise<SoftHsmToken> {
  const dir = makeTempDir('trustplane-softhsm-');
  const label = options.label ?? `trustplane-test-${randomBytes(4).toString('hex')}`;
  // Random by default, so a test can check a message does not contain it.
  const pin = options.pin ?? randomBytes(8).toString('hex');
  const soPin = options.soPin ?? randomBytes(8).toString('hex');
  const conf = join(dir, 'softhsm2.conf');
  const tokens = join(dir, 'tokens');
  const aside = join(dir, 'removed');
  const env = { SOFTHSM2_CONF: conf };
  const util = (args: string[]) => run(SOFTHSM_UTIL_PATH, args, { env: { PATH: process.env.PATH, ...env } });
  try {
    writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    // softhsm2-util fails to enumerate a token directory that does not exist yet.
    mkdirSync(tokens, { mode: 0o700 });
    const result = await util(['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin]);
    if (result.code !== 0) throw new Error(`softhsm2-util --init-token failed (${result.code}): ${result.stderr.trim()}`);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const tokenDirectory = () => {
    const [name, ...others] = readdirSync(tokens);
    if (name === undefined || others.length > 0) throw new Error(`expected exactly one token in ${tokens}`);
    return name;
  };
  let removed: string | undefined;
  return {
    conf, dir, label, pin, soPin, libraryPath: SOFTHSM_LIBRARY_PATH, env,
    remove() {
      if (removed !== undefined) throw new Error('the token is already removed');
      removed = tokenDirectory();
      renameSync(join(tokens, removed), aside);
    },
    restore() {
      if (removed === undefined) throw new Error('the token is not removed');
      renameSync(aside, join(tokens, removed));
      removed = undefined;
    },
    async destroy() {
      const result = await util(['--delete-token', '--token', label]);
      if (result.code !== 0) throw new Error(`softhsm2-util --delete-token failed (${result.code}): ${result.stderr.trim()}`);
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
