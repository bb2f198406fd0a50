// Unsealing the software module with a root key rebuilt from shares, for the unseal call and for
// seal migration alike. Must zero the rebuilt key whatever happens.
import { WrongRootKeyError, zeroize, type SoftwareCryptoModule } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';

/** Unseals; a key that is not the module's (a wrong share went into it) becomes InvalidShareException saying `wrongShares`. */
export async function unsealWithRootKey(module: SoftwareCryptoModule, rootKey: Buffer, wrongShares: string): Promise<void> {
  try {
    await module.unseal(rootKey);
  } catch (error) {
    if (error instanceof WrongRootKeyError) throw new UserError('InvalidShareException', wrongShares);
    throw error;
  } finally {
    zeroize(rootKey);
  }
}
