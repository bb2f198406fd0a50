// Host class names and ARNs, and join token text. Must never do I/O.
import { UserError } from '../../../shared/errors.ts';

const SEGMENT = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const MAX_CLASS_DEPTH = 8;
export const JOIN_TOKEN_PREFIX = 'tpjoin_';

/** A class path like `web/jp`: lower-case segments, at most eight deep. Returns it with its parent. */
export function parseClassName(name: string, parent?: string): { name: string; parent?: string } {
  const full = parent === undefined ? name : `${parent}/${name}`;
  const segments = full.split('/');
  if (segments.length > MAX_CLASS_DEPTH || !segments.every((segment) => SEGMENT.test(segment))) {
    throw new UserError('ValidationException',
      `Class name '${full}' must be up to ${MAX_CLASS_DEPTH} segments of lower-case letters, digits and hyphens, separated by '/' (e.g. web/jp).`);
  }
  return { name: full, parent: segments.length > 1 ? segments.slice(0, -1).join('/') : undefined };
}

export function classArn(region: string, accountId: string, name: string): string {
  return `arn:aws:trustplane:${region}:${accountId}:class/${name}`;
}

export function hostArn(region: string, accountId: string, hostId: string): string {
  return `arn:aws:trustplane:${region}:${accountId}:host/${hostId}`;
}
