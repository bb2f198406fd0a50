// Signed tokens for relying parties (EAR attestation results as JWTs), their public keys as a
// JWKS, and detached JWS signatures (reference policies, alert webhooks), all ES256 through jose.
// Must never sign with a key it was not handed for this call, nor accept an algorithm but ES256.
import { CompactSign, compactVerify, exportJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { importPrivateKeyDer, importPublicKeyDer } from './asymmetric.ts';

export const TOKEN_ALGORITHM = 'ES256';

/** Signs a JWT with an ES256 key (PKCS#8 DER); the caller zeroizes the key. */
export async function signJwt(privateKeyPkcs8: Uint8Array, keyId: string, claims: JWTPayload, type = 'JWT'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: keyId, typ: type })
    .sign(importPrivateKeyDer(privateKeyPkcs8));
}

/** A public key (SPKI DER) as a JWK for a JWKS: kid, alg and use set so stock libraries pick it. */
export async function publicJwk(publicKeyDer: Uint8Array, keyId: string): Promise<JWK> {
  return { ...(await exportJWK(importPublicKeyDer(publicKeyDer))), kid: keyId, alg: TOKEN_ALGORITHM, use: 'sig' };
}

/** A compact JWS over `payload` with the payload left out (`header..signature`): it travels beside what it signs. */
export async function signDetached(privateKeyPkcs8: Uint8Array, keyId: string, payload: Uint8Array): Promise<string> {
  const jws = await new CompactSign(payload).setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: keyId }).sign(importPrivateKeyDer(privateKeyPkcs8));
  const [header, , signature] = jws.split('.');
  return `${header}..${signature}`;
}

/** Checks a detached JWS made by signDetached against the payload; false on any mismatch. */
export async function verifyDetached(publicKeyDer: Uint8Array, detached: string, payload: Uint8Array): Promise<boolean> {
  const [header, empty, signature] = detached.split('.');
  if (empty !== '' || !header || !signature) return false;
  try {
    await compactVerify(`${header}.${Buffer.from(payload).toString('base64url')}.${signature}`, importPublicKeyDer(publicKeyDer),
      { algorithms: [TOKEN_ALGORITHM] });
    return true;
  } catch {
    return false;
  }
}
