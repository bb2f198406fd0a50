// Field schemas shared by the identity operations.
// Must never hold handler logic.
import { z } from 'zod';
import { fields } from '../../../shared/http/index.ts';

/** Target prefix of the identity operations; requests are signed for the service "trustplane". */
export const IAM = 'TrustPlaneIam';

export const name = fields.text({ min: 1, max: 64 });
export const limit = fields.integer({ min: 1, max: 1000 }).optional();
export const marker = fields.markerField;
export const policyDocument = fields.text({ min: 1, max: 32768 });
export const tags = z.array(z.object({ Key: fields.text({ min: 1, max: 128 }), Value: fields.text({ min: 0, max: 256 }) })).max(50).optional();

export function tagMap(list: Array<{ Key: string; Value: string }> | undefined): Record<string, string> | undefined {
  if (!list) return undefined;
  const map: Record<string, string> = {};
  for (const tag of list) map[tag.Key] = tag.Value;
  return map;
}
