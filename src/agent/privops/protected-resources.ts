// What no privileged operation may touch, whoever signed it: the agent's own process (its memory holds the host's
// keys) and its own state and trust configuration (keys, nonces, the trust file and what it names).
// Must never judge a path by its spelling alone: links and /proc views are resolved before the comparison.
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { UserError } from '../../shared/errors.ts';
import type { PrivopParameters } from '../../shared/privop-wire.ts';

/** A path as the kernel would reach it now: every link resolved (for a path that does not exist yet, its directory's). */
export function resolvedPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    try {
      return join(realpathSync(dirname(path)), basename(path));
    } catch {
      return resolve(path);
    }
  }
}

/** Whether `path` is `root` or inside it (both already resolved). */
export const within = (path: string, root: string) => path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);

export class ProtectedResources {
  readonly #pids: ReadonlySet<number>;
  readonly #paths: readonly string[];

  /** `paths` are files or directories; each is resolved now, and so is every path it is compared with later. */
  constructor(options: { pids: number[]; paths: string[] }) {
    this.#pids = new Set(options.pids);
    this.#paths = [...new Set(options.paths.flatMap((path) => [resolve(path), resolvedPath(path)]))];
  }

  /** The agent's own: its pid, its state directory, its trust file and the files that names, and /proc views of itself. */
  static ofAgent(options: { stateDir: string; trustFiles?: string[] }): ProtectedResources {
    return new ProtectedResources({ pids: [process.pid], paths: [options.stateDir, ...(options.trustFiles ?? []), `/proc/${process.pid}`] });
  }

  /** Refuses (PrivopProtectedResource, 403) parameters naming a protected pid or a path into a protected place. */
  check(operation: string, parameters: PrivopParameters): void {
    const pid = parameters.pid;
    if (pid !== undefined && this.#pids.has(Number(pid))) {
      throw new UserError('PrivopProtectedResource', `${operation}: pid ${pid} is the agent itself; no privileged operation may read it.`, 403);
    }
    const path = parameters.path;
    if (typeof path === 'string') {
      const resolved = resolvedPath(path);
      if (this.#paths.some((root) => within(resolved, root) || within(resolve(path), root))) {
        throw new UserError('PrivopProtectedResource', `${operation}: ${path} is the agent's own state or trust configuration; no privileged operation may touch it.`, 403);
      }
    }
  }
}
