// The AWS shared files a server keeps in its home, in the format the AWS CLI and SDKs read:
// `config` (region and endpoint, always) and, in dev mode only, `credentials` (the root key).
// The one place that knows their names and format. Must never write credentials outside dev mode.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from './fs.ts';

export const CREDENTIALS_FILE = 'credentials';
export const AWS_CONFIG_FILE = 'config';
export const AWS_PROFILE = 'trustplane';

export interface SharedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** Written durably, before the key it names is stored, so a crash never leaves a key nobody holds. */
export function writeSharedCredentials(home: string, credentials: SharedCredentials): void {
  writeFileDurably(join(home, CREDENTIALS_FILE),
    `[${AWS_PROFILE}]\naws_access_key_id = ${credentials.accessKeyId}\naws_secret_access_key = ${credentials.secretAccessKey}\n`);
}

export function readSharedCredentials(home: string): SharedCredentials | undefined {
  const path = join(home, CREDENTIALS_FILE);
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8');
  const accessKeyId = /aws_access_key_id\s*=\s*(\S+)/.exec(text)?.[1];
  const secretAccessKey = /aws_secret_access_key\s*=\s*(\S+)/.exec(text)?.[1];
  return accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined;
}

/** Rewritten at each start, so endpoint_url follows --listen. */
export function writeSharedConfig(home: string, region: string, url: string): void {
  writeFileDurably(join(home, AWS_CONFIG_FILE), `[profile ${AWS_PROFILE}]\nregion = ${region}\nendpoint_url = ${url}\n`);
}
