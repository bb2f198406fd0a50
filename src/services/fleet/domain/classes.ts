// Key inheritance down the class tree (a class may use its own keys and every ancestor's), and which
// classes of a lineage refuse join tokens. Must never do I/O: it works on the classes the caller has already read.

/** What inheritance needs of a class: its name, its parent, and the keys granted to it directly. */
export interface ClassGrants {
  name: string;
  parent?: string;
  keyIds: string[];
}

/** The named classes and all their ancestors. */
export function lineage(classes: ReadonlyMap<string, ClassGrants>, names: Iterable<string>): Set<string> {
  const seen = new Set<string>();
  for (const name of names) {
    let current = classes.get(name);
    // A class shared by two lineages is walked once (and a cycle, which the store cannot hold, would end).
    while (current && !seen.has(current.name)) {
      seen.add(current.name);
      current = current.parent === undefined ? undefined : classes.get(current.parent);
    }
  }
  return seen;
}

/** Keys the named classes may use (their own grants and every ancestor's), distinct and sorted. */
export function entitledKeyIds(classes: ReadonlyMap<string, ClassGrants>, names: Iterable<string>): string[] {
  const entitled = new Set<string>();
  for (const name of lineage(classes, names)) for (const keyId of classes.get(name)?.keyIds ?? []) entitled.add(keyId);
  return [...entitled].sort();
}

/** Indexes listed classes by name, for entitledKeyIds. */
export function classesByName<T extends ClassGrants>(classes: readonly T[]): Map<string, T> {
  return new Map(classes.map((record) => [record.name, record]));
}

/** What admission needs of a class: whether it lets hosts in with a join token (absent settings: it does). */
export interface ClassAdmission extends ClassGrants {
  attestation?: { joinTokens: boolean };
}

/** The named classes, or ancestors of them, that admit no host with a join token (their hosts enrol with their TPM); sorted. */
export function classesRefusingJoinTokens(classes: ReadonlyMap<string, ClassAdmission>, names: Iterable<string>): string[] {
  return [...lineage(classes, names)].filter((name) => classes.get(name)?.attestation?.joinTokens === false).sort();
}
