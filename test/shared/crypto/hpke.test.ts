import assert from 'node:assert/strict';
import * as nodeCrypto from 'node:crypto';
import { test } from 'node:test';
import { generateHpkeKeyPair, hpkeOpen, hpkeSeal } from '../../../src/shared/crypto/index.ts';
import { CiphertextError } from '../../../src/shared/errors.ts';

test('HPKE seals to an X25519 key and opens only with the same key, info and aad', async () => {
  const recipient = await generateHpkeKeyPair();
  const other = await generateHpkeKeyPair();
  const sealed = await hpkeSeal(recipient.publicKey, Buffer.from('key material'), 'purpose', Buffer.from('host-1'));
  assert.equal(sealed.enc.length, 32);
  assert.equal((await hpkeOpen(recipient.privateKey, sealed, 'purpose', Buffer.from('host-1'))).toString(), 'key material');
  await assert.rejects(hpkeOpen(other.privateKey, sealed, 'purpose', Buffer.from('host-1')), CiphertextError);
  await assert.rejects(hpkeOpen(recipient.privateKey, sealed, 'other purpose', Buffer.from('host-1')), CiphertextError);
  await assert.rejects(hpkeOpen(recipient.privateKey, sealed, 'purpose', Buffer.from('host-2')), CiphertextError);
  const tampered = { enc: sealed.enc, ciphertext: Buffer.from(sealed.ciphertext) };
  tampered.ciphertext[0] ^= 1;
  await assert.rejects(hpkeOpen(recipient.privateKey, tampered, 'purpose', Buffer.from('host-1')), CiphertextError);
});

test('HPKE keys are raw X25519 keys OpenSSL agrees with', async () => {
  const pair = await generateHpkeKeyPair();
  // The raw private key, imported by OpenSSL, derives the same raw public key.
  const pkcs8Prefix = Buffer.from('302e020100300506032b656e04220420', 'hex');
  const privateKey = nodeCrypto.createPrivateKey({ key: Buffer.concat([pkcs8Prefix, pair.privateKey]), format: 'der', type: 'pkcs8' });
  const spki = nodeCrypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  assert.deepEqual(spki.subarray(-32), pair.publicKey);
  await assert.rejects(hpkeSeal(Buffer.alloc(31), Buffer.from('x'), 'p', Buffer.alloc(0)), RangeError);
});
