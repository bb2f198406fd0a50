// IPv4 and IPv6 addresses and CIDR blocks for IpAddress / NotIpAddress, parsed and matched in plain code.
// Must never accept an address it cannot read unambiguously (zone ids, leading zeros, stray characters).

/** An address as four 32-bit words (IPv6) or one (IPv4). */
export interface IpAddressValue {
  readonly v6: boolean;
  readonly words: readonly number[];
}

export interface CidrBlock {
  readonly v6: boolean;
  readonly words: readonly number[];
  readonly masks: readonly number[];
}

function parseIpv4Words(text: string): number | undefined {
  let value = 0;
  let octets = 0;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && text.charCodeAt(i) !== 46 /* . */) continue;
    const part = text.slice(start, i);
    // Leading zeros are refused: some parsers read them as octal, so "010" would mean different things.
    if (part.length === 0 || part.length > 3 || (part.length > 1 && part[0] === '0') || !/^\d+$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
    octets++;
    start = i + 1;
  }
  return octets === 4 ? value >>> 0 : undefined;
}

function parseIpv6Words(text: string): number[] | undefined {
  if (text.length < 2 || !/^[0-9A-Fa-f:.]+$/.test(text)) return undefined;
  const doubleColon = text.indexOf('::');
  if (doubleColon >= 0 && text.indexOf('::', doubleColon + 1) >= 0) return undefined;
  const head = doubleColon >= 0 ? text.slice(0, doubleColon) : text;
  const tail = doubleColon >= 0 ? text.slice(doubleColon + 2) : '';
  if (doubleColon >= 0 && head.includes('.')) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (piece.includes('.')) {
        // An embedded IPv4 address may only end the address.
        if (i !== pieces.length - 1) return undefined;
        const v4 = parseIpv4Words(piece);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (piece.length === 0 || piece.length > 4) return undefined;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const first = groups(head);
  const last = doubleColon >= 0 ? groups(tail) : [];
  if (first === undefined || last === undefined) return undefined;
  const missing = 8 - first.length - last.length;
  if (doubleColon >= 0 ? missing < 1 : missing !== 0) return undefined;
  const all = [...first, ...new Array<number>(missing).fill(0), ...last];
  return [0, 1, 2, 3].map((i) => ((all[2 * i]! << 16) | all[2 * i + 1]!) >>> 0);
}

/**
 * Reads an address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, as Node reports IPv4 peers on dual-stack
 * sockets) becomes the IPv4 address, since that is how policies name it.
 */
export function parseIp(text: string): IpAddressValue | undefined {
  if (text.includes(':')) {
    const words = parseIpv6Words(text);
    if (words === undefined) return undefined;
    if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return { v6: false, words: [words[3]!] };
    return { v6: true, words };
  }
  const v4 = parseIpv4Words(text);
  return v4 === undefined ? undefined : { v6: false, words: [v4] };
}

/** Reads "address" or "address/prefix"; a bare address is a block of one. */
export function parseCidr(text: string): CidrBlock | undefined {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  // A mapped address in a policy is kept as IPv6: only request addresses are unmapped.
  const v6 = address.includes(':');
  const words = v6 ? parseIpv6Words(address) : (() => { const v4 = parseIpv4Words(address); return v4 === undefined ? undefined : [v4]; })();
  if (words === undefined) return undefined;
  const bits = v6 ? 128 : 32;
  let prefix = bits;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(digits)) return undefined;
    prefix = Number(digits);
    if (prefix > bits) return undefined;
  }
  const masks = words.map((_, i) => {
    const covered = Math.min(32, Math.max(0, prefix - 32 * i));
    return covered === 0 ? 0 : covered === 32 ? 0xffffffff : (0xffffffff << (32 - covered)) >>> 0;
  });
  return { v6, words: words.map((w, i) => (w & masks[i]!) >>> 0), masks };
}

export function cidrContains(block: CidrBlock, ip: IpAddressValue): boolean {
  if (block.v6 !== ip.v6) return false;
  for (let i = 0; i < block.words.length; i++) {
    if (((ip.words[i]! & block.masks[i]!) >>> 0) !== block.words[i]) return false;
  }
  return true;
}
