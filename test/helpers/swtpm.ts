// Throwaway software TPMs for tests: swtpm_setup manufactures one (EK, EK certificate, platform certificate) in a temporary directory, swtpm serves it on a free port.
// Must never write outside its temporary directory (no $HOME, no /var/lib/swtpm-localca) nor leave a swtpm process running.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { Tpm } from '../../src/agent/tpm.ts';
import { freePort } from './agent.ts';
import { run, skipOrFail } from './exec.ts';
import { makeTempDir } from './server.ts';

export const SWTPM_PATH = '/usr/bin/swtpm';
export const SWTPM_SETUP_PATH = '/usr/bin/swtpm_setup';
export const SWTPM_LOCALCA_PATH = '/usr/bin/swtpm_localca';

export type TpmToolsLocation = { version: string; swtpmVersion: string; skip?: undefined } | { skip: string };

/**
 * Finds tpm2-tools and (unless only the tools are needed) swtpm with swtpm_setup. When one is
 * missing the tests skip with the reason, unless TRUSTPLANE_REQUIRE_ALL=1, where it is a failure.
 */
export async function locateTpmTools(options: { swtpm?: boolean } = {}): Promise<TpmToolsLocation> {
  const tools = await Tpm.available();
  if (!tools.available) return skipOrFail(`${tools.reason}; install Debian's tpm2-tools`);
  const env = { PATH: process.env.PATH };
  // The tests also use the verifier-side tools, which the agent never runs.
  for (const tool of ['tpm2_makecredential', 'tpm2_checkquote']) {
    const probe = await run(tool, ['--version'], { env });
    if (probe.code !== 0) return skipOrFail(`${tool} not usable (exit ${probe.code}); install Debian's tpm2-tools`);
  }
  if (options.swtpm === false) return { version: tools.version, swtpmVersion: '' };
  const swtpm = await run(SWTPM_PATH, ['--version'], { env });
  // swtpm_setup --version exits 1 (0.7.1); its capabilities are the reliable probe.
  const setup = await run(SWTPM_SETUP_PATH, ['--print-capabilities'], { env });
  if (swtpm.code !== 0 || setup.code !== 0 || !setup.stdout.includes('"tpm-2.0"')) {
    return skipOrFail(`swtpm not usable (${SWTPM_PATH} --version: exit ${swtpm.code}; ${SWTPM_SETUP_PATH} --print-capabilities: exit ${setup.code}`
      + `${setup.code === 0 ? ', no TPM 2.0 support' : ''}); install Debian's swtpm and swtpm-tools`);
  }
  return { version: tools.version, swtpmVersion: swtpm.stdout.trim() };
}

export interface Swtpm {
  /** For TPM2TOOLS_TCTI or `new Tpm({ tcti })`. */
  tcti: string;
  /** The temporary directory: TPM state, the local CA and the configuration files. */
  dir: string;
  /** The local CA's root certificate (PEM), which issued the EK certificate's issuer. */
  caCertificatePath: string;
  /** The CA that signed the EK and platform certificates (PEM). */
  issuerCertificatePath: string;
  /** Power-cycles the TPM: the same state (EK, persistent AK), PCRs cleared, its reset count up by one. */
  reboot(): Promise<void>;
  stop(): Promise<void>;
}

async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = await freePort();
    if (port < 65535 && await portIsFree(port + 1)) return port;
  }
  throw new Error('found no two consecutive free ports for swtpm');
}

async function waitForPort(port: number, deadline: number, exited: () => string | undefined): Promise<void> {
  for (;;) {
    const problem = exited();
    if (problem !== undefined) throw new Error(problem);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => { socket.destroy(); resolve(false); });
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`swtpm did not listen on 127.0.0.1:${port} in time`);
    // Yield to the event loop (and swtpm) between attempts without a fixed sleep.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Manufactures and starts a fresh TPM 2.0. */
export async function startSwtpm(options: { timeoutMs?: number } = {}): Promise<Swtpm> {
  const dir = makeTempDir('trustplane-swtpm-');
  const state = join(dir, 'state');
  const ca = join(dir, 'localca');
  mkdirSync(state, { mode: 0o700 });
  mkdirSync(ca, { mode: 0o700 });
  // Every path the setup and its CA use points into dir; without --config, swtpm_setup reads
  // /etc/swtpm_setup.conf, whose CA state lives in /var/lib/swtpm-localca (or ~/.config as non-root).
  const setupConf = join(dir, 'swtpm_setup.conf');
  const localcaConf = join(dir, 'swtpm-localca.conf');
  const localcaOptions = join(dir, 'swtpm-localca.options');
  writeFileSync(setupConf, `create_certs_tool = ${SWTPM_LOCALCA_PATH}\ncreate_certs_tool_config = ${localcaConf}\n`
    + `create_certs_tool_options = ${localcaOptions}\nactive_pcr_banks = sha256\n`);
  writeFileSync(localcaConf, `statedir = ${ca}\nsigningkey = ${join(ca, 'signkey.pem')}\nissuercert = ${join(ca, 'issuercert.pem')}\n`
    + `certserial = ${join(ca, 'certserial')}\n`);
  writeFileSync(localcaOptions, '--platform-manufacturer trustplane\n--platform-version 2.1\n--platform-model swtpm\n');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: dir, TMPDIR: dir };
  const setup = await run(SWTPM_SETUP_PATH, ['--tpm2', '--tpmstate', state, '--createek', '--create-ek-cert', '--create-platform-cert',
    '--overwrite', '--config', setupConf, '--logfile', join(dir, 'swtpm_setup.log')], { env, timeoutMs: options.timeoutMs ?? 60_000 });
  if (setup.code !== 0) {
    let log = '';
    try { log = readFileSync(join(dir, 'swtpm_setup.log'), 'utf8'); } catch { /* no log written */ }
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`swtpm_setup failed (${setup.code}): ${setup.stderr.trim()}\n${log.trim()}`);
  }
  let child: ReturnType<typeof spawn> | undefined;
  try {
    // The swtpm TCTI talks to the control channel on the next port up, so both must be free.
    const port = await freePortPair();
    const ctrlPort = port + 1;
    const launch = async () => {
      const started = spawn(SWTPM_PATH, ['socket', '--tpm2', '--tpmstate', `dir=${state}`,
        '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${ctrlPort},bindaddr=127.0.0.1`,
        '--flags', 'not-need-init,startup-clear', '--log', `file=${join(dir, 'swtpm.log')}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      child = started;
      let stderr = '';
      let exit: string | undefined;
      started.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
      started.once('exit', (code, signal) => { exit = `swtpm exited (${code ?? signal}) before listening: ${stderr.trim()}`; });
      started.once('error', (error) => { exit = `swtpm could not start: ${error.message}`; });
      await waitForPort(port, Date.now() + (options.timeoutMs ?? 10_000), () => exit);
    };
    const halt = async () => {
      const running = child;
      if (running && running.exitCode === null && running.signalCode === null) {
        const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
        running.kill('SIGTERM');
        await exited;
      }
    };
    await launch();
    return {
      tcti: `swtpm:host=127.0.0.1,port=${port}`,
      dir,
      caCertificatePath: join(ca, 'swtpm-localca-rootca-cert.pem'),
      issuerCertificatePath: join(ca, 'issuercert.pem'),
      async reboot() {
        await halt();
        await launch();
      },
      async stop() {
        await halt();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
