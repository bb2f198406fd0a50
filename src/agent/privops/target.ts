// Whether a request's target names this host: its host id, or a class it is in (or a class nested under the named one).
// Must never do I/O: the caller passes the host id and the classes the server last told the host.

/** Class names are paths (`web/jp` is nested under `web`): a target class takes the class itself and every class below it. */
export function inClass(target: string, hostClasses: readonly string[]): boolean {
  return hostClasses.some((name) => name === target || name.startsWith(`${target}/`));
}

/** Why the target is not this host, or undefined when it is. */
export function targetMismatch(target: { HostId: string } | { Class: string }, host: { hostId?: string; classes: readonly string[] }): string | undefined {
  if ('HostId' in target) return target.HostId === host.hostId ? undefined : `The request is for ${target.HostId}, not this host (${host.hostId}).`;
  if (inClass(target.Class, host.classes)) return undefined;
  return host.classes.length === 0
    ? `The request is for class ${target.Class}; this host does not know its classes yet (it learns them when it connects to the server).`
    : `The request is for class ${target.Class}; this host (${host.hostId}) is in ${host.classes.join(', ')}.`;
}
