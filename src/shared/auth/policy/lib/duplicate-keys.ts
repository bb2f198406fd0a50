// Finds a repeated member name in a JSON object, which JSON.parse silently resolves to the last one.
// Must never be given text JSON.parse rejected: it trusts the input to be well-formed and only tracks structure.

interface Frame {
  readonly object: boolean;
  readonly keys: Set<string>;
  readonly path: string;
  expectKey: boolean;
  lastKey: string;
  index: number;
}

/**
 * Returns the path and name of the first duplicated member, e.g. { path: 'Statement[1]', key: 'Effect' }.
 * A reviewer reads the first "Effect" while JSON.parse keeps the last, so a duplicate is refused outright.
 */
export function findDuplicateKey(text: string): { path: string; key: string } | undefined {
  const stack: Frame[] = [];
  const childPath = (): string => {
    const top = stack[stack.length - 1];
    if (top === undefined) return '';
    if (top.object) return top.path ? `${top.path}.${top.lastKey}` : top.lastKey;
    return `${top.path}[${top.index}]`;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.object && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { path: top.path, key };
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      const path = childPath();
      stack.push({ object: ch === '{', keys: new Set(), path, expectKey: ch === '{', lastKey: '', index: 0 });
    } else if (ch === '}' || ch === ']') {
      stack.pop();
    } else if (ch === ',') {
      const top = stack[stack.length - 1];
      if (top?.object) top.expectKey = true;
      else if (top) top.index++;
    }
  }
  return undefined;
}
