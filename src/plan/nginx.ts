/** What an nginx config says about load balancing: upstream servers, upstream keepalive, proxy timeouts. Pure. */

/** One `server host:port params;` of an upstream. */
export interface UpstreamServer {
  readonly host: string;
  readonly port: number | undefined;
  readonly params: readonly string[];
}

/** An `upstream NAME { … }` block. */
export interface Upstream {
  readonly name: string;
  readonly servers: readonly UpstreamServer[];
  /** Idle keepalive connections kept to the upstream (`keepalive N`); undefined: none. */
  readonly keepaliveConnections: number | undefined;
  /** How long an idle upstream connection is kept (`keepalive_timeout`, default 60 s). */
  readonly keepaliveTimeoutMs: number;
}

/** A `proxy_pass` and the proxy_read_timeout in force where it stands (nginx's default 60 s when none is set above it). */
export interface ProxyPass {
  /** The host part of the URL: an upstream's name or a host such as `web-1`. */
  readonly target: string;
  readonly readTimeoutMs: number;
}

/** The parts of an nginx config the analysis uses. */
export interface NginxConfig {
  readonly upstreams: readonly Upstream[];
  readonly proxyPasses: readonly ProxyPass[];
  /** `include` directives, which the analysis does not follow. */
  readonly includes: readonly string[];
}

interface Token {
  readonly text: string;
  readonly quoted: boolean;
  readonly line: number;
}

interface Directive {
  readonly name: string;
  readonly args: readonly string[];
  readonly block: readonly Directive[] | undefined;
}

/** Thrown for text nginx would not parse either, with the line. */
export class NginxParseError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === '\n') {
      line += 1;
      i += 1;
    } else if (/\s/.test(ch)) {
      i += 1;
    } else if (ch === '#') {
      // A comment only where a token starts (`location /x#y` is one word).
      while (i < text.length && text[i] !== '\n') i += 1;
    } else if (ch === '{' || ch === '}' || ch === ';') {
      out.push({ text: ch, quoted: false, line });
      i += 1;
    } else if (ch === '"' || ch === "'") {
      const start = line;
      let j = i + 1;
      let word = '';
      while (j < text.length && text[j] !== ch) {
        if (text[j] === '\\' && j + 1 < text.length) j += 1;
        if (text[j] === '\n') line += 1;
        word += text[j];
        j += 1;
      }
      if (j >= text.length) throw new NginxParseError('unterminated quoted string', start);
      out.push({ text: word, quoted: true, line: start });
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s{};]/.test(text[j] as string)) j += 1;
      out.push({ text: text.slice(i, j), quoted: false, line });
      i = j;
    }
  }
  return out;
}

function parseBlock(tokens: Token[], pos: { i: number }, opened: number | undefined): Directive[] {
  const out: Directive[] = [];
  let words: Token[] = [];
  while (pos.i < tokens.length) {
    const t = tokens[pos.i++] as Token;
    if (!t.quoted && t.text === ';') {
      if (words.length) out.push({ name: (words[0] as Token).text, args: words.slice(1).map((w) => w.text), block: undefined });
      words = [];
    } else if (!t.quoted && t.text === '{') {
      if (!words.length) throw new NginxParseError('a block without a directive name', t.line);
      out.push({ name: (words[0] as Token).text, args: words.slice(1).map((w) => w.text), block: parseBlock(tokens, pos, t.line) });
      words = [];
    } else if (!t.quoted && t.text === '}') {
      if (opened === undefined) throw new NginxParseError('unexpected "}"', t.line);
      if (words.length) throw new NginxParseError(`directive "${(words[0] as Token).text}" is not terminated by ";"`, (words[0] as Token).line);
      return out;
    } else words.push(t);
  }
  if (opened !== undefined) throw new NginxParseError(`unexpected end of file, expecting "}" for the block opened on line ${opened}`, opened);
  if (words.length) throw new NginxParseError(`directive "${(words[0] as Token).text}" is not terminated by ";"`, (words[0] as Token).line);
  return out;
}

const NGINX_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 };

/** nginx times: `300s`, `5m`, `1d`, `1h 30m`, `60` (seconds). */
export function nginxTime(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const text = v.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const re = /\s*(\d+)(ms|s|m|h|d|w|M|y)\s*/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (NGINX_UNITS[m[2] as string] as number);
    at = re.lastIndex;
  }
  return at === text.length && at > 0 ? total : undefined;
}

function proxyTarget(url: string): string {
  const m = /^[a-z]+:\/\/(\[[^\]]+\]|[^/:]+)/i.exec(url);
  return m ? (m[1] as string) : url;
}

/** Parses an nginx config (a conf.d file or a whole nginx.conf). */
export function parseNginx(text: string): NginxConfig {
  const tree = parseBlock(tokenize(text), { i: 0 }, undefined);
  const upstreams: Upstream[] = [];
  const passes: ProxyPass[] = [];
  const includes: string[] = [];
  const walk = (list: readonly Directive[], inherited: number) => {
    // In nginx the innermost proxy_read_timeout wins, wherever it stands in its block.
    const here = nginxTime(list.find((d) => d.name === 'proxy_read_timeout')?.args.join(' '));
    const timeout = here ?? inherited;
    for (const d of list) {
      if (d.name === 'upstream' && d.block) {
        const servers = d.block
          .filter((x) => x.name === 'server' && x.args[0])
          .map((x) => {
            const [addr, ...params] = x.args as [string, ...string[]];
            const m = /^(\[[^\]]+\]|unix:.*|[^:]*)(?::(\d+))?$/.exec(addr) as RegExpExecArray;
            return { host: m[1] as string, port: m[2] ? Number(m[2]) : undefined, params };
          });
        const ka = d.block.find((x) => x.name === 'keepalive');
        const kat = d.block.find((x) => x.name === 'keepalive_timeout');
        upstreams.push({ name: d.args[0] ?? '', servers, keepaliveConnections: ka ? Number(ka.args[0]) : undefined, keepaliveTimeoutMs: nginxTime(kat?.args.join(' ')) ?? 60_000 });
      } else if (d.block) walk(d.block, timeout);
      else if (d.name === 'proxy_pass' && d.args[0]) passes.push({ target: proxyTarget(d.args[0]), readTimeoutMs: timeout });
      else if (d.name === 'include' && d.args[0]) includes.push(d.args[0]);
    }
  };
  walk(tree, 60_000);
  return { upstreams, proxyPasses: passes, includes };
}

/** Several config files of one nginx service read as one (nginx.conf plus conf.d/*.conf). */
export function combineNginx(configs: readonly NginxConfig[]): NginxConfig {
  return {
    upstreams: configs.flatMap((c) => c.upstreams),
    proxyPasses: configs.flatMap((c) => c.proxyPasses),
    includes: configs.flatMap((c) => c.includes),
  };
}
