// `trustplane privop`: sealed privileged operations in three roles kept apart: the requester signs a request
// naming its result key (`request`), the courier carries it and the sealed result (`deliver`), the key holder opens it (`open`).
// Must never print a result that failed any check, nor let `deliver` see anything but ciphertext.
import { existsSync, mkdirSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { AgentClient } from '../../clients/agent.ts';
import { registerPrivopCampaign } from './privop-campaign.ts';
import { registerPrivopWatch } from './privop-watch.ts';
import { deliverThroughRelay, withRelayDelivery, type RelayDeliveryFlags } from './privop-relay.ts';
import { parseDurationSeconds } from '../../shared/config.ts';
import {
  canonicalJson, certificateToPem, createCertificateAuthority, describeCertificate, generateResultKeyPair,
  generateSignerKeyPair, issueCertificate, privateKeyPemToDer, privateKeyToPem, publicKeyPemToDer, randomBytes,
  resultPrivateKeyFromPem, resultPublicKeyFromPem, signDetachedJws, zeroize, createRevocationList, normalizeHexSerial, revocationListDer,
  revocationListToPem, verifyRevocationList, type RevocationEntry, type RevocationReason,
} from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { writeFileAtomically, writeFileDurably } from '../../shared/fs.ts';
import {
  MAX_PRIVOP_WINDOW_SECONDS, parsePrivopRequestFile, privopRequestSchema, PRIVOP_JWS_TYPE, PRIVOP_REQUEST_VERSION,
  type PrivopRequest, type PrivopRequestFile,
} from '../../shared/privop-wire.ts';
import { isEncryptedPrivopRequest, parseEncryptedPrivopRequest } from '../../shared/privop-encrypted-request.ts';
import { fileWriter, hostCertificateCheck, openSealedResultFile, type HostTrustFlags } from '../sealed-results.ts';
import { collect, withClientFlags } from '../client.ts';
import { asInvalidKey, parameterRecord, readCertificatesFile, readInputFile, readKeyFile } from '../files.ts';
import { encryptForHost, wantsEncryption, withRequestEncryptionFlags, type RequestEncryptionFlags } from './privop-encryption.ts';

const KEY_FILES = ['signer.key', 'signer.pub', 'result.key', 'result.pub'];
/** `NAME=PATH` → `NAME=<the file's bytes, base64>`: large or binary values (a patch) do not fit on a command line. */
/** `--param` and `--param-file` together: a name given by both is refused, as one given twice. */
function mergedParameters(inline: Record<string, string>, fromFiles: Record<string, string>): Record<string, string> {
  const twice = Object.keys(fromFiles).find((name) => Object.hasOwn(inline, name));
  if (twice) throw new UserError('ValidationException', `--param ${twice} is given twice.`);
  return { ...inline, ...fromFiles };
}

function fileParameters(pairs: string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(parameterRecord('param-file', pairs))
    .map(([name, path]) => [name, readInputFile(path, 'the parameter file').toString('base64')]));
}

function readRequestJson(path: string): unknown {
  const text = readInputFile(path, 'the request file');
  try {
    return JSON.parse(text.toString('utf8'));
  } catch {
    throw new UserError('PrivopMalformedRequest', 'The request file is not JSON.');
  }
}

/** The request a sealed result is checked against: the signed request in clear (an encrypted file is the host's to open). */
function readRequestToOpen(path: string): PrivopRequest {
  const value = readRequestJson(path);
  if (isEncryptedPrivopRequest(value)) {
    throw new UserError('PrivopRequestEncrypted', `${path} is encrypted to the host: give --request the copy \`privop request --save-request\` wrote.`);
  }
  return parsePrivopRequestFile(value).request;
}

function positiveDays(text: string): number {
  const days = /^\d{1,5}$/.test(text) ? Number(text) : 0;
  if (days < 1 || days > 36_500) throw new UserError('ValidationException', '--days must be a whole number of days from 1 to 36500.');
  return days;
}

export function registerPrivopCommands(program: Command): void {
  const privop = program.command('privop').description('sealed privileged operations: signed requests, untrusted couriers, results encrypted to the requester');

  registerPrivopCampaign(privop);
  registerPrivopWatch(privop);

  privop.command('keygen').description('make a signer key pair (Ed25519) and a result key pair (X25519)')
    .requiredOption('--out <dir>', 'directory for signer.key, signer.pub, result.key, result.pub')
    .action(async (flags: { out: string }) => {
      mkdirSync(flags.out, { recursive: true, mode: 0o700 });
      const existing = KEY_FILES.filter((name) => existsSync(join(flags.out, name)));
      if (existing.length > 0) throw new UserError('AlreadyExists', `${flags.out} already holds ${existing.join(', ')}; not overwriting keys.`);
      const signer = generateSignerKeyPair();
      const result = await generateResultKeyPair();
      writeFileDurably(join(flags.out, 'signer.key'), signer.privateKeyPem, 0o600);
      writeFileDurably(join(flags.out, 'signer.pub'), signer.publicKeyPem, 0o644);
      writeFileDurably(join(flags.out, 'result.key'), result.privateKeyPem, 0o600);
      writeFileDurably(join(flags.out, 'result.pub'), result.publicKeyPem, 0o644);
      process.stdout.write(`${JSON.stringify({ Directory: flags.out, Files: KEY_FILES })}\n`);
    });

  privop.command('make-ca').description('make a CA for privileged-operation signers (ca.key, ca.pem; ECDSA P-256): for tests and demos, keep a real one offline')
    .requiredOption('--out <dir>', 'directory for ca.key and ca.pem')
    .option('--name <cn>', 'the CA\'s common name', 'trustplane privop signers')
    .option('--days <n>', 'validity in days', '365')
    .action(async (flags: { out: string; name: string; days: string }) => {
      const days = positiveDays(flags.days);
      mkdirSync(flags.out, { recursive: true, mode: 0o700 });
      const existing = ['ca.key', 'ca.pem'].filter((name) => existsSync(join(flags.out, name)));
      if (existing.length > 0) throw new UserError('AlreadyExists', `${flags.out} already holds ${existing.join(', ')}; not overwriting keys.`);
      const authority = await createCertificateAuthority(flags.name, days);
      try {
        writeFileDurably(join(flags.out, 'ca.key'), privateKeyToPem(authority.privateKeyPkcs8), 0o600);
      } finally {
        zeroize(authority.privateKeyPkcs8);
      }
      writeFileDurably(join(flags.out, 'ca.pem'), certificateToPem(authority.certificateDer), 0o644);
      process.stdout.write(`${JSON.stringify({ Directory: flags.out, Files: ['ca.key', 'ca.pem'] })}\n`);
    });

  privop.command('issue-signer').description('make a signer key pair (Ed25519) and a certificate for it with the privop-signing EKU')
    .requiredOption('--ca-key <file>', 'the CA private key (ca.key)')
    .requiredOption('--ca-cert <file>', 'the CA certificate (ca.pem)')
    .requiredOption('--subject <dn>', 'the signer\'s subject, CN=NAME (what trust files narrow by)')
    .requiredOption('--out <dir>', 'directory for signer.key, signer.pub, signer.pem')
    .option('--days <n>', 'validity in days (never beyond the CA\'s)', '30')
    .action(async (flags: { caKey: string; caCert: string; subject: string; out: string; days: string }) => {
      const days = positiveDays(flags.days);
      const commonName = /^CN=([^,=+]{1,64})$/.exec(flags.subject)?.[1];
      if (!commonName) throw new UserError('ValidationException', '--subject must be CN=NAME (one common name, no commas).');
      const [caDer] = readCertificatesFile(flags.caCert, 'the CA certificate');
      mkdirSync(flags.out, { recursive: true, mode: 0o700 });
      const existing = ['signer.key', 'signer.pub', 'signer.pem'].filter((name) => existsSync(join(flags.out, name)));
      if (existing.length > 0) throw new UserError('AlreadyExists', `${flags.out} already holds ${existing.join(', ')}; not overwriting keys.`);
      const caKey = readKeyFile(flags.caKey, privateKeyPemToDer);
      const signer = generateSignerKeyPair();
      let issued: Awaited<ReturnType<typeof issueCertificate>>;
      try {
        issued = await issueCertificate({ authority: { certificateDer: caDer, privateKeyPkcs8: caKey.pkcs8 }, subjectPublicKeyDer: publicKeyPemToDer(signer.publicKeyPem),
          commonName, usage: 'privop-signing', validityDays: days });
      } catch (error) {
        if (error instanceof Error && /does not match/.test(error.message)) throw new UserError('InvalidKey', `${flags.caKey} is not the key of ${flags.caCert}.`);
        throw error;
      } finally {
        zeroize(caKey.pkcs8);
      }
      writeFileDurably(join(flags.out, 'signer.key'), signer.privateKeyPem, 0o600);
      writeFileDurably(join(flags.out, 'signer.pub'), signer.publicKeyPem, 0o644);
      writeFileDurably(join(flags.out, 'signer.pem'), certificateToPem(issued.certificateDer), 0o644);
      process.stdout.write(`${JSON.stringify({ Directory: flags.out, Files: ['signer.key', 'signer.pub', 'signer.pem'], Subject: flags.subject,
        Serial: issued.serialNumber, NotAfter: issued.notAfter.toISOString() })}\n`);
    });

  privop.command('revoke-signer').description('add a signer certificate to its CA\'s revocation list (hosts name the list with crlFile in --privop-trust)')
    .requiredOption('--ca-key <file>', 'the CA private key (ca.key)')
    .requiredOption('--ca-cert <file>', 'the CA certificate (ca.pem)')
    .requiredOption('--out <file>', 'the revocation list to write (PEM); an existing one there is extended')
    .option('--serial <hex>', 'the serial of the certificate to revoke (issue-signer prints it); none: just re-issue the list', collect, [] as string[])
    .option('--reason <reason>', 'keyCompromise, affiliationChanged or privilegeWithdrawn', 'keyCompromise')
    .option('--days <n>', 'how long the list stays current (hosts refuse certified signers once it is out of date)', '7')
    .action(async (flags: { caKey: string; caCert: string; out: string; serial: string[]; reason: string; days: string }) => {
      const days = positiveDays(flags.days);
      if (!['keyCompromise', 'affiliationChanged', 'privilegeWithdrawn'].includes(flags.reason)) {
        throw new UserError('ValidationException', '--reason must be keyCompromise, affiliationChanged or privilegeWithdrawn.');
      }
      const serials = flags.serial.map((serial) => {
        if (!/^(0x)?[0-9a-fA-F]{1,40}$/.test(serial)) throw new UserError('ValidationException', `--serial must be a hex serial number; got '${serial}'.`);
        return normalizeHexSerial(serial.replace(/^0x/, ''));
      });
      const [caDer] = readCertificatesFile(flags.caCert, 'the CA certificate');
      const now = new Date();
      let entries: RevocationEntry[] = [];
      let number = 1n;
      if (existsSync(flags.out)) {
        // The list there must be this CA's: extending a list signed by another CA, or a forged one, would launder it.
        const current = await verifyRevocationList(revocationListDer(readInputFile(flags.out, 'the revocation list')), caDer, null)
          .catch((error: Error) => { throw new UserError('InvalidRevocationList', `${flags.out}: ${error.message}.`); });
        entries = current.entries;
        number = (current.number ?? 0n) + 1n;
      }
      const listed = new Set(entries.map((entry) => entry.serial));
      for (const serial of serials) {
        if (!listed.has(serial)) entries.push({ serial, revokedAt: now, reason: flags.reason as RevocationReason });
      }
      const caKey = readKeyFile(flags.caKey, privateKeyPemToDer);
      let crl: Buffer;
      try {
        crl = await createRevocationList({ authority: { certificateDer: caDer, privateKeyPkcs8: caKey.pkcs8 }, entries, thisUpdate: now,
          nextUpdate: new Date(now.getTime() + days * 86_400_000), number });
      } catch (error) {
        if (error instanceof Error && /does not match/.test(error.message)) throw new UserError('InvalidKey', `${flags.caKey} is not the key of ${flags.caCert}.`);
        throw error;
      } finally {
        zeroize(caKey.pkcs8);
      }
      writeFileDurably(flags.out, revocationListToPem(crl), 0o644);
      process.stdout.write(`${JSON.stringify({ File: flags.out, Number: Number(number), Revoked: entries.map((entry) => entry.serial),
        NextUpdate: new Date(now.getTime() + days * 86_400_000).toISOString() })}\n`);
    });

  withRequestEncryptionFlags(privop.command('request').description('sign a request for one host or a class; prints the request file (JSON)')
    .option('--host <host-id>', 'the host that must run it (h-…)')
    .option('--class <name>', 'instead of --host: any host in this class (or a class under it) may run it, each once')
    .option('--save-request <file>', 'with encryption: also write the signed request in clear here, for `privop open --request`'))
    .requiredOption('--op <operation>', 'the operation, e.g. system.snapshot, process.list, file.hash, file.read')
    .option('--param <name=value>', 'a parameter (repeatable)', collect, [] as string[])
    .option('--param-file <name=path>', 'a parameter read from a file, base64-encoded (e.g. contentBase64 for patch.apply; repeatable)',
      collect, [] as string[])
    .requiredOption('--sign-key <file>', 'the requester\'s signing key (signer.key)')
    .requiredOption('--result-key <file>', 'the public key results are sealed to (result.pub)')
    .option('--sign-cert <file>', 'the signing key\'s certificate, then any intermediates (PEM): attached for hosts that trust its CA')
    .option('--ttl <duration>', 'how long the request stays valid, e.g. 10m, 2h (at most 7d)', '10m')
    .option('--requester <name>', 'who asks (recorded by the host; default user@machine)')
    .action(async (flags: RequestEncryptionFlags & { host?: string; class?: string; saveRequest?: string; op: string; param: string[]; paramFile: string[];
      signKey: string; resultKey: string; signCert?: string; ttl: string; requester?: string }) => {
      if (Boolean(flags.host) === Boolean(flags.class)) throw new UserError('ValidationException', 'Name the target with --host HOST or --class NAME (one of them).');
      const encrypt = wantsEncryption(flags, flags);
      if (flags.saveRequest && !encrypt) throw new UserError('ValidationException', '--save-request is for encrypted requests (a plain request file is already in clear).');
      const ttl = parseDurationSeconds(flags.ttl, '--ttl');
      if (ttl < 1 || ttl > MAX_PRIVOP_WINDOW_SECONDS) throw new UserError('ValidationException', '--ttl must be from 1s to 7d.');
      const resultKey = readKeyFile(flags.resultKey, resultPublicKeyFromPem);
      const now = Date.now();
      const candidate = {
        Version: PRIVOP_REQUEST_VERSION, Operation: flags.op, Parameters: mergedParameters(parameterRecord('param', flags.param), fileParameters(flags.paramFile)),
        Target: flags.host ? { HostId: flags.host } : { Class: flags.class as string },
        NotBefore: new Date(now).toISOString(), NotAfter: new Date(now + ttl * 1000).toISOString(), Nonce: randomBytes(24).toString('base64url'),
        Requester: flags.requester ?? `${userInfo().username}@${hostname()}`, ResultKey: resultKey.toString('base64url'),
      };
      const checked = privopRequestSchema.safeParse(candidate);
      if (!checked.success) {
        throw new UserError('ValidationException', checked.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '));
      }
      const signKeyPem = readInputFile(flags.signKey, 'the key file').toString('utf8');
      const chain = flags.signCert ? readCertificatesFile(flags.signCert, 'the signer certificate') : undefined;
      const leaf = chain?.[0];
      if (leaf && !asInvalidKey(flags.signKey, () => publicKeyPemToDer(signKeyPem)).equals(describeCertificate(leaf).publicKeyDer)) {
        throw new UserError('InvalidKey', `${flags.signCert} certifies another key than ${flags.signKey}.`);
      }
      // The signature names the certificate (x5t#S256): the host judges the request under that one only.
      const signature = await asInvalidKey(flags.signKey, () => signDetachedJws(signKeyPem, canonicalJson(checked.data), PRIVOP_JWS_TYPE, leaf));
      const certificates = chain?.map(certificateToPem);
      const file: PrivopRequestFile = { Request: checked.data, Signature: signature, ...(certificates ? { Certificates: certificates } : {}) };
      const text = `${JSON.stringify(file, null, 2)}\n`;
      if (!encrypt) {
        process.stdout.write(text);
        return;
      }
      const encrypted = await encryptForHost(Buffer.from(text), flags.host as string, flags);
      if (flags.saveRequest) writeFileDurably(flags.saveRequest, text, 0o600);
      process.stdout.write(`${JSON.stringify(encrypted, null, 2)}\n`);
    });

  withRelayDelivery(privop.command('deliver')
    .description('carry a request to a host\'s agent (or the server relay) and write the sealed result, streamed (the courier reads neither)')
    .argument('[request-file]', 'the request file from `privop request`')
    .option('--agent <socket>', 'the agent\'s Unix socket on the target host'))
    .action(async (requestFile: string | undefined, flags: { agent?: string } & RelayDeliveryFlags) => {
      if (flags.relay || flags.relayId) return deliverThroughRelay(requestFile, (path) => readInputFile(path, 'the request file'), flags);
      if (!flags.agent || !requestFile) throw new UserError('ValidationException', 'Give a request file and --agent SOCKET, or --relay.');
      // Checked for shape only: the courier cannot judge the signature, the host does (nor, encrypted, read anything but the host id).
      const value = readRequestJson(requestFile);
      const carried = isEncryptedPrivopRequest(value) ? parseEncryptedPrivopRequest(value) : parsePrivopRequestFile(value).file;
      const client = new AgentClient(flags.agent);
      const body = { Request: carried as unknown as Record<string, unknown> };
      if (flags.out) {
        // Durably, and nothing is left there if delivery fails.
        await writeFileAtomically(flags.out, (file) => client.callToStream('PrivilegedOperation', body, fileWriter(file)));
      } else {
        await client.callToStream('PrivilegedOperation', body, process.stdout, { end: false });
      }
    });

  withClientFlags(privop.command('open').description('decrypt a sealed result and check the host signature and the request binding; prints the result (JSON)')
    .argument('<sealed-file>', 'the sealed result from `privop deliver`')
    .requiredOption('--key <file>', 'the result private key (result.key)')
    .option('--request <file>', 'the request it answers: checks digest, host and result key (without it, an older result to the same key also opens)')
    .option('--ca <file>', 'the account CA certificate (PEM) host certificates must be issued by (default $TRUSTPLANE_ACCOUNT_CA, else fetched from the server)')
    .option('--insecure-skip-host-check', 'open without knowing which host made the result (anyone can seal to a result key)')
    .option('--out <file>', 'write the result\'s bulk content (e.g. process.dump\'s archive) to FILE, only once every check passed'))
    .action(async (sealedFile: string, flags: { key: string; request?: string; out?: string } & HostTrustFlags) => {
      const request = flags.request ? readRequestToOpen(flags.request) : undefined;
      const checkCertificate = await hostCertificateCheck(flags);
      const keys = readKeyFile(flags.key, resultPrivateKeyFromPem);
      try {
        const plaintext = await openSealedResultFile(sealedFile, { privateKey: keys.privateKey, publicKey: keys.publicKey, request, out: flags.out,
          checkCertificate });
        if (request && 'Class' in request.Target) {
          // Any host may answer a class request: the host signature says which one did (its membership was the host's own judgement).
          process.stderr.write(`trustplane: answered by ${plaintext.HostId} (the request named class ${request.Target.Class})\n`);
        }
        if (plaintext.Error) {
          process.stdout.write(`${JSON.stringify(plaintext, null, 2)}\n`);
          throw new UserError('PrivopOperationFailed', `${plaintext.HostId} ran ${plaintext.Operation} and it failed: ${plaintext.Error.Code}: ${plaintext.Error.Message}`);
        }
        process.stdout.write(`${JSON.stringify(plaintext, null, 2)}\n`);
      } finally {
        zeroize(keys.privateKey);
      }
    });
}
