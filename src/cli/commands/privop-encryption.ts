// Requests encrypted to the target host's request key: `trustplane host request-key` prints the certificate the server
// publishes, and `privop request --encrypt-to FILE | --encrypt` checks that certificate and encrypts the signed request to it.
// Must never encrypt to a key whose certificate failed a check, nor print the signed request when asked to encrypt it.
import type { Command } from 'commander';
import { checkRequestKeyCertificate, pemCertificatesToDer } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { parseHostUri } from '../../shared/fleet-wire.ts';
import { writeFileDurably } from '../../shared/fs.ts';
import { encryptPrivopRequest, type EncryptedPrivopRequest } from '../../shared/privop-encrypted-request.ts';
import { withClient, withClientFlags, type ClientFlags } from '../client.ts';
import { printResult } from '../output.ts';
import { readCertificatesFile, readInputFile } from '../files.ts';

/** What TrustPlaneFleet.GetHostRequestKey answers. */
interface HostRequestKeyView {
  HostId: string;
  KeyId: string;
  Certificate: string;
  Fingerprint: string;
  Serial: string;
  NotAfter: string;
  RegisteredAt: string;
}

function fetchRequestKey(flags: ClientFlags, hostId: string): Promise<HostRequestKeyView> {
  return withClient(flags, (client) => client.fleet<HostRequestKeyView>('GetHostRequestKey', { HostId: hostId }));
}

/** `trustplane host request-key HOST`: the certificate of a host's request key (PEM), for `privop request --encrypt-to`. */
export function registerHostRequestKeyCommand(host: Command): void {
  withClientFlags(host.command('request-key').argument('<host-id>')
    .description('print the certificate of a host\'s privileged-operation request key (PEM), to encrypt requests to it')
    .option('--out <file>', 'write the PEM to this file instead of printing it'))
    .action(async (hostId: string, flags: ClientFlags & { out?: string }) => {
      const view = await fetchRequestKey(flags, hostId);
      if (flags.out) writeFileDurably(flags.out, view.Certificate, 0o644);
      const summary = { HostId: view.HostId, KeyId: view.KeyId, Fingerprint: view.Fingerprint, Serial: view.Serial, NotAfter: view.NotAfter,
        RegisteredAt: view.RegisteredAt, ...(flags.out ? { File: flags.out } : { Certificate: view.Certificate }) };
      printResult(flags, summary, () => (flags.out ? `wrote the request key certificate of ${hostId} to ${flags.out}` : view.Certificate.trimEnd()));
    });
}

export interface RequestEncryptionFlags {
  encryptTo?: string;
  encrypt?: boolean;
  ca?: string;
  endpoint?: string;
}

/** Adds the encryption options to `privop request`. */
export function withRequestEncryptionFlags(command: Command): Command {
  return command
    .option('--encrypt-to <file>', 'encrypt the whole request to the host\'s request key: its certificate (from `host request-key`); needs --ca')
    .option('--encrypt', 'encrypt to the host\'s request key, fetching its certificate from the server (checked against --ca when given)')
    .option('--ca <file>', 'the account CA certificate (PEM) the request key certificate must chain to')
    .option('--endpoint <url>', 'trustplane URL for --encrypt (default $TRUSTPLANE_ENDPOINT or http://127.0.0.1:8200)');
}

/** Whether the flags ask for encryption; refuses contradictory ones before anything is signed. */
export function wantsEncryption(flags: RequestEncryptionFlags, target: { host?: string }): boolean {
  if (flags.encryptTo && flags.encrypt) throw new UserError('ValidationException', 'Give --encrypt-to FILE or --encrypt, not both.');
  const wanted = Boolean(flags.encryptTo || flags.encrypt);
  if (wanted && !target.host) throw new UserError('ValidationException', 'An encrypted request goes to one host\'s key: name it with --host.');
  if (flags.encryptTo && !flags.ca) {
    throw new UserError('ValidationException', '--encrypt-to needs --ca (the account CA): a certificate from a file is trusted only when it chains to it.');
  }
  return wanted;
}

/**
 * The signed request file encrypted to `hostId`'s request key, after checking its certificate: chained to --ca when given
 * (always for --encrypt-to), valid now, X25519 for keyAgreement only, naming the host. Without --ca (--encrypt only) the
 * server's word is trusted for which key is the host's, and a warning says so.
 */
export async function encryptForHost(requestFileJson: Buffer, hostId: string, flags: RequestEncryptionFlags): Promise<EncryptedPrivopRequest> {
  const pem = flags.encryptTo ? readInputFile(flags.encryptTo, 'the request key certificate').toString('utf8') : (await fetchRequestKey({ endpoint: flags.endpoint }, hostId)).Certificate;
  const [certificateDer] = pemCertificatesToDer(pem);
  if (!certificateDer) throw new UserError('ValidationException', `${flags.encryptTo ?? 'The server\'s answer'} holds no PEM certificate.`);
  let anchorDer: Buffer | undefined;
  if (flags.ca) {
    [anchorDer] = readCertificatesFile(flags.ca, 'the CA certificate');
  } else {
    process.stderr.write('trustplane: warning: no --ca given: the request key certificate is the server\'s word, not checked against the account CA\n');
  }
  const checked = await checkRequestKeyCertificate({ certificateDer, anchorDer, now: new Date(),
    namesHost: (uri) => parseHostUri(uri)?.hostId === hostId });
  if ('problem' in checked) throw new UserError('PrivopUntrustedRequestKey', `The request key certificate of ${hostId} may not be used: ${checked.problem}.`);
  return encryptPrivopRequest({ requestFileJson, hostId, requestKey: checked.key.publicKey });
}
