// Streaming HPKE: chunks open in order only, the final flag and the binding are checked, and the first chunk is exactly
// what one-shot HPKE (hpkeSeal/hpkeOpen, same suite) makes with the same AAD: a cross-check against the one-shot code path.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  generateHpkeKeyPair, hpkeOpen, hpkeStreamChunkAad, HpkeStreamOpener, HpkeStreamSealer, randomBytes,
} from '../../../src/shared/crypto/index.ts';
import { CiphertextError } from '../../../src/shared/errors.ts';

const binding = Buffer.alloc(32, 7);

async function sealed(chunks: Buffer[]) {
  const recipient = await generateHpkeKeyPair();
  const sealer = await HpkeStreamSealer.create(recipient.publicKey, 'purpose', binding);
  const out: Buffer[] = [];
  for (const [index, chunk] of chunks.entries()) out.push(await sealer.seal(chunk, index === chunks.length - 1));
  return { recipient, enc: sealer.enc, out };
}

test('a sealed stream opens chunk by chunk with the same key, info and binding', async () => {
  const chunks = [randomBytes(1000), randomBytes(1000), randomBytes(10)];
  const { recipient, enc, out } = await sealed(chunks);
  const opener = await HpkeStreamOpener.create(recipient.privateKey, enc, 'purpose', binding);
  for (const [index, ciphertext] of out.entries()) assert.deepEqual(await opener.open(ciphertext, index === out.length - 1), chunks[index]);
  assert.equal(opener.finished, true);
  await assert.rejects(opener.open(out[0] as Buffer, true), CiphertextError, 'nothing after the final chunk');
});

test('the first chunk is one-shot HPKE with the chunk AAD (cross-check against hpkeOpen)', async () => {
  const { recipient, enc, out } = await sealed([Buffer.from('first'), Buffer.from('last')]);
  const opened = await hpkeOpen(recipient.privateKey, { enc, ciphertext: out[0] as Buffer }, 'purpose', hpkeStreamChunkAad(binding, 0, false));
  assert.equal(opened.toString(), 'first');
  assert.deepEqual(hpkeStreamChunkAad(binding, 1, true).subarray(32), Buffer.from('000000000000000101', 'hex'));
});

test('reordered, truncated, re-flagged, altered chunks or another binding do not open', async () => {
  const chunks = [randomBytes(64), randomBytes(64), randomBytes(64)];
  const { recipient, enc, out } = await sealed(chunks);
  const opener = () => HpkeStreamOpener.create(recipient.privateKey, enc, 'purpose', binding);
  const swapped = await opener();
  await assert.rejects(swapped.open(out[1] as Buffer, false), CiphertextError);
  await assert.rejects(swapped.open(out[0] as Buffer, false), CiphertextError, 'a failed stream stays failed');
  const cut = await opener();
  await cut.open(out[0] as Buffer, false);
  await assert.rejects(cut.open(out[1] as Buffer, true), CiphertextError, 'a middle chunk presented as the final one');
  const altered = await opener();
  const flipped = Buffer.from(out[0] as Buffer);
  flipped[3] = (flipped[3] as number) ^ 1;
  await assert.rejects(altered.open(flipped, false), CiphertextError);
  const rebound = await HpkeStreamOpener.create(recipient.privateKey, enc, 'purpose', Buffer.alloc(32, 8));
  await assert.rejects(rebound.open(out[0] as Buffer, false), CiphertextError);
  await assert.rejects(HpkeStreamOpener.create(recipient.privateKey, Buffer.alloc(31), 'purpose', binding), CiphertextError);
});
