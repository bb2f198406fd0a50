// The version 2 sealed-result format in process: a stream sealed here opens to its content and result; every malformed
// variant (magic, sizes, frame kinds and order, missing final frame or trailer, trailing bytes, altered records) is a
// typed UserError from the reader, never an untyped exception, and a re-signed stream with reordered chunks fails the AEAD.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it, before } from 'node:test';
import {
  certificateToPem, createCertificateAuthority, generateAsymmetricPair, generateHpkeKeyPair, generateResultKeyPair, issueCertificate, privateKeyToPem,
  resultPrivateKeyFromPem, sha256Hex, signWithPemKey, type HpkeKeyPair,
} from '../../src/shared/crypto/index.ts';
import { UserError } from '../../src/shared/errors.ts';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { trustplane, trustplaneFails } from '../helpers/cli.ts';
import { makeTempDir } from '../helpers/server.ts';
import { hostUri } from '../../src/shared/fleet-wire.ts';
import {
  contentRecords, openSealedPrivopResult, resultRecord, sealPrivopResultStream, verifySealedPrivopResult, PRIVOP_RESULT_STREAM_MAGIC,
} from '../../src/shared/privop-result-stream.ts';
import { sealPrivopResult, type PrivopRequest, type PrivopResultPlaintext } from '../../src/shared/privop-wire.ts';

const HOST_ID = 'h-0123abcd';
const CHUNK = 4096;
const digest = Buffer.alloc(32, 3);

async function* pieces(buffers: Buffer[]): AsyncGenerator<Buffer> {
  for (const buffer of buffers) yield buffer;
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of source) parts.push(part);
  return Buffer.concat(parts);
}

describe('sealed result stream (version 2)', () => {
  let recipient: HpkeKeyPair;
  let host: { certificatePem: string; keyPem: string; caPem: string };
  const content = Buffer.alloc(3 * CHUNK + 100, 0x61);
  const plaintext = (extra: Partial<PrivopResultPlaintext> = {}): PrivopResultPlaintext => ({ Version: 2, RequestDigest: digest.toString('base64url'),
    HostId: HOST_ID, Operation: 'process.dump', StartedAt: 'a', CompletedAt: 'b', Result: { ok: true },
    Content: { Bytes: content.length, Sha256: sha256Hex(content) }, ...extra });
  const seal = (records: Buffer[]) => collect(sealPrivopResultStream({ resultKey: recipient.publicKey, digest, hostId: HOST_ID,
    hostCertificatePem: host.certificatePem, hostKeyPem: host.keyPem, plaintext: pieces(records), chunkBytes: CHUNK }));
  const sealedWith = (extra: Partial<PrivopResultPlaintext> = {}) => seal([...contentRecords(content), resultRecord(plaintext(extra))]);
  /** Verifies then opens `sealed`; resolves to the content and the result. */
  const open = async (sealed: Buffer) => {
    const verified = await verifySealedPrivopResult(pieces([sealed]), { publicKey: recipient.publicKey });
    const received: Buffer[] = [];
    const result = await openSealedPrivopResult(pieces([sealed]), { verified, privateKey: recipient.privateKey,
      onContent: async (piece) => { received.push(Buffer.from(piece)); } });
    return { result, content: Buffer.concat(received) };
  };
  const refused = async (sealed: Buffer, code: RegExp) => {
    await assert.rejects(open(sealed), (error: unknown) => error instanceof UserError && code.test(error.code) && error.httpStatus === 400);
  };

  before(async () => {
    recipient = await generateHpkeKeyPair();
    const authority = await createCertificateAuthority('test CA', 1);
    const pair = await generateAsymmetricPair('ECC_NIST_P256');
    const issued = await issueCertificate({ authority, subjectPublicKeyDer: pair.publicKeyDer, commonName: HOST_ID, usage: 'both',
      uris: [hostUri('123456789012', HOST_ID)], validityDays: 1 });
    host = { certificatePem: certificateToPem(issued.certificateDer), keyPem: privateKeyToPem(pair.privateKeyDer),
      caPem: certificateToPem(authority.certificateDer) };
  });

  it('opens to the content and the result, delivered in any piece sizes', async () => {
    const sealed = await sealedWith();
    assert.ok(sealed.subarray(0, PRIVOP_RESULT_STREAM_MAGIC.length).equals(PRIVOP_RESULT_STREAM_MAGIC));
    const opened = await open(sealed);
    assert.deepEqual(opened.content, content);
    assert.deepEqual(opened.result.Result, { ok: true });
    // One byte at a time at the start, odd sizes after: the reader does not depend on how the bytes come.
    const verified = await verifySealedPrivopResult(pieces([...Array.from(sealed.subarray(0, 64), (byte) => Buffer.from([byte])),
      sealed.subarray(64, 5000), sealed.subarray(5000)]), { publicKey: recipient.publicKey });
    assert.equal(verified.header.ChunkBytes, CHUNK);
  });

  it('refuses malformed structure with typed errors', async () => {
    const sealed = await sealedWith();
    const headerEnd = PRIVOP_RESULT_STREAM_MAGIC.length + 4 + sealed.readUInt32BE(PRIVOP_RESULT_STREAM_MAGIC.length);
    const at = (offset: number, bytes: Buffer) => { const copy = Buffer.from(sealed); bytes.copy(copy, offset); return copy; };
    const u32 = (value: number) => { const bytes = Buffer.alloc(4); bytes.writeUInt32BE(value); return bytes; };
    await refused(Buffer.from('{"Format":"trustplane-privop-result"}'), /PrivopMalformedResult/);
    await refused(Buffer.alloc(0), /PrivopMalformedResult/);
    await refused(at(0, Buffer.from('X')), /PrivopMalformedResult/);
    await refused(at(PRIVOP_RESULT_STREAM_MAGIC.length, u32(10 * 1024 * 1024)), /PrivopMalformedResult/);
    await refused(at(PRIVOP_RESULT_STREAM_MAGIC.length, u32(0)), /PrivopMalformedResult/);
    await refused(at(PRIVOP_RESULT_STREAM_MAGIC.length + 4, Buffer.from('!')), /PrivopMalformedResult/);
    await refused(at(headerEnd, Buffer.from('Z')), /PrivopMalformedResult/);
    await refused(at(headerEnd + 1, u32(CHUNK + 15)), /PrivopMalformedResult/);
    await refused(at(headerEnd + 1, u32(0xffffffff)), /PrivopMalformedResult/);
    await refused(at(headerEnd, Buffer.from('S')), /PrivopTruncatedResult|PrivopMalformedResult/);
    await refused(sealed.subarray(0, sealed.length - 1), /PrivopTruncatedResult/);
    await refused(sealed.subarray(0, headerEnd + 100), /PrivopTruncatedResult/);
    await refused(Buffer.concat([sealed, Buffer.from([0])]), /PrivopMalformedResult/);
    await refused(at(sealed.length - 1, Buffer.from([sealed[sealed.length - 1]! ^ 1])), /PrivopBadHostSignature/);
  });

  it('refuses well-signed streams whose chunks or records are wrong (a host that misbehaves, or a reordering re-signed)', async () => {
    // Records: content after the result, an unknown record kind, content not matching its description, no result at all.
    await refused(await seal([resultRecord(plaintext()), ...contentRecords(content)]), /PrivopMalformedResult/);
    await refused(await seal([Buffer.from([0x58, 0, 0, 0, 1, 0])]), /PrivopMalformedResult/);
    await refused(await seal([...contentRecords(content), resultRecord(plaintext({ Content: { Bytes: 1, Sha256: 'x' } }))]), /PrivopMalformedResult/);
    await refused(await seal([...contentRecords(content)]), /PrivopMalformedResult/);
    await refused(await sealedWith({ HostId: 'h-ffff' }), /PrivopMalformedResult/);
    // Two data frames swapped, and the trailer signed again over the result: only the AEAD (sequence, AAD index) notices.
    const sealed = await sealedWith();
    const headerEnd = PRIVOP_RESULT_STREAM_MAGIC.length + 4 + sealed.readUInt32BE(PRIVOP_RESULT_STREAM_MAGIC.length);
    const frame = 5 + CHUNK + 16;
    const body = Buffer.concat([sealed.subarray(0, headerEnd), sealed.subarray(headerEnd + frame, headerEnd + 2 * frame),
      sealed.subarray(headerEnd, headerEnd + frame), sealed.subarray(headerEnd + 2 * frame, sealed.lastIndexOf(Buffer.from([0x53, 0, 0, 0])))]);
    const signature = signWithPemKey(host.keyPem, Buffer.concat([Buffer.from('trustplane-privop-result-v2\0'), digest, createHash('sha256').update(body).digest()]));
    const trailer = Buffer.alloc(5);
    trailer[0] = 0x53;
    trailer.writeUInt32BE(signature.length, 1);
    await refused(Buffer.concat([body, trailer, signature]), /PrivopCannotDecrypt/);
    // Another result key cannot open it.
    const other = await generateHpkeKeyPair();
    const verified = await verifySealedPrivopResult(pieces([sealed]), { publicKey: recipient.publicKey });
    await assert.rejects(openSealedPrivopResult(pieces([sealed]), { verified, privateKey: other.privateKey, onContent: async () => {} }),
      (error: unknown) => error instanceof UserError && error.code === 'PrivopCannotDecrypt');
  });

  it('`privop open` still opens a version 1 result, and a version 2 one whose content goes to --out only when every check passes', async (t) => {
    const dir = makeTempDir('trustplane-privop-format-');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const keys = await generateResultKeyPair();
    const keyPath = join(dir, 'result.key');
    writeFileSync(keyPath, keys.privateKeyPem);
    // The host certificates here come from this test's CA: `open` is told so (it would otherwise ask a server).
    writeFileSync(join(dir, 'ca.pem'), host.caPem);
    const publicKey = resultPrivateKeyFromPem(keys.privateKeyPem).publicKey;
    const v1 = await sealPrivopResult({ request: { ResultKey: publicKey.toString('base64url') } as PrivopRequest, digest, hostId: HOST_ID,
      hostCertificatePem: host.certificatePem, hostKeyPem: host.keyPem, plaintext: { ...plaintext({ Content: undefined }), Version: 1 } });
    writeFileSync(join(dir, 'v1.json'), v1);
    assert.deepEqual((JSON.parse(await trustplane(['privop', 'open', join(dir, 'v1.json'), '--key', keyPath, '--ca', join(dir, 'ca.pem')])) as PrivopResultPlaintext).Result, { ok: true });

    const v2 = await collect(sealPrivopResultStream({ resultKey: publicKey, digest, hostId: HOST_ID, hostCertificatePem: host.certificatePem,
      hostKeyPem: host.keyPem, plaintext: pieces([...contentRecords(content), resultRecord(plaintext())]), chunkBytes: CHUNK }));
    writeFileSync(join(dir, 'v2.bin'), v2);
    const printed = JSON.parse(await trustplane(['privop', 'open', join(dir, 'v2.bin'), '--key', keyPath, '--ca', join(dir, 'ca.pem')])) as PrivopResultPlaintext;
    assert.deepEqual(Buffer.from(printed.Content?.Base64 ?? '', 'base64'), content);
    const out = join(dir, 'content.bin');
    const written = JSON.parse(await trustplane(['privop', 'open', join(dir, 'v2.bin'), '--key', keyPath, '--out', out, '--ca', join(dir, 'ca.pem')])) as PrivopResultPlaintext;
    assert.equal(written.Content?.File, out);
    // A failed operation's partial content is not kept; the error is reported.
    const failed = await collect(sealPrivopResultStream({ resultKey: publicKey, digest, hostId: HOST_ID, hostCertificatePem: host.certificatePem,
      hostKeyPem: host.keyPem, plaintext: pieces([...contentRecords(content), resultRecord(plaintext({ Content: undefined, Result: undefined,
        Error: { Code: 'ProcessGone', Message: 'gone' } }))]), chunkBytes: CHUNK }));
    writeFileSync(join(dir, 'failed.bin'), failed);
    const failedOut = join(dir, 'failed-content.bin');
    assert.match(await trustplaneFails(['privop', 'open', join(dir, 'failed.bin'), '--key', keyPath, '--out', failedOut, '--ca', join(dir, 'ca.pem')]), /PrivopOperationFailed.*ProcessGone/);
    assert.equal(existsSync(failedOut), false);
  });
});
