/** What an nginx config says about load balancing: upstream servers, upstream keepalive, proxy timeouts. Pure. */
import { parseDuration } from './units.js';

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

/** The parts of an nginx config the analysis uses. */
export interface NginxConfig {
  readonly upstreams: readonly Upstream[];
  /** Every proxy_read_timeout set, in ms; nginx's default is 60 s where none is set. */
  readonly proxyReadTimeoutsMs: readonly number[];
  /** Whether some location proxies without setting proxy_read_timeout anywhere above it. */
  readonly usesDefaultProxyReadTimeout: boolean;
}

interface Directive {
  readonly name: string;
  readonly args: readonly string[];
  readonly block: readonly Directive[] | undefined;
}

/** Thrown for text nginx would not parse either. */
export class NginxParseError extends Error {}

function tokenize(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i] as string;
    if (/\s/.test(ch)) {
      i += 1;
    } else if (ch === '#') {
      while (i < text.length && text[i] !== '\n') i += 1;
    } else if (ch === '{' || ch === '}' || ch === ';') {
      out.push(ch);
      i += 1;
    } else if (ch === '"' || ch === "'") {
      let j = i + 1;
      let word = '';
      while (j < text.length && text[j] !== ch) {
        if (text[j] === '\\' && j + 1 < text.length) j += 1;
        word += text[j];
        j += 1;
      }
      if (j >= text.length) throw new NginxParseError('unterminated quoted string');
      out.push(word);
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s{};#]/.test(text[j] as string)) j += 1;
      out.push(text.slice(i, j));
      i = j;
    }
  }
  return out;
}

function parseBlock(tokens: string[], pos: { i: number }, nested: boolean): Directive[] {
  const out: Directive[] = [];
  let words: string[] = [];
  while (pos.i < tokens.length) {
    const t = tokens[pos.i++] as string;
    if (t === ';') {
      if (words.length) out.push({ name: words[0] as string, args: words.slice(1), block: undefined });
      words = [];
    } else if (t === '{') {
      if (!words.length) throw new NginxParseError('a block without a directive name');
      out.push({ name: words[0] as string, args: words.slice(1), block: parseBlock(tokens, pos, true) });
      words = [];
    } else if (t === '}') {
      if (!nested) throw new NginxParseError('unexpected "}"');
      if (words.length) throw new NginxParseError(`directive "${words[0]}" is not terminated by ";"`);
      return out;
    } else words.push(t);
  }
  if (nested) throw new NginxParseError('unexpected end of file, expecting "}"');
  if (words.length) throw new NginxParseError(`directive "${words[0]}" is not terminated by ";"`);
  return out;
}

/** nginx times: `300s`, `5m`, `60` (seconds). */
function nginxTime(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  return /^\d+$/.test(v) ? Number(v) * 1000 : parseDuration(v);
}

/** Parses an nginx config (a conf.d file or a whole nginx.conf). */
export function parseNginx(text: string): NginxConfig {
  const tree = parseBlock(tokenize(text), { i: 0 }, false);
  const upstreams: Upstream[] = [];
  const timeouts: number[] = [];
  let usesDefault = false;
  const walk = (list: readonly Directive[], inheritedTimeout: boolean) => {
    const here = list.find((d) => d.name === 'proxy_read_timeout');
    const t = nginxTime(here?.args[0]);
    if (t !== undefined) timeouts.push(t);
    const hasTimeout = inheritedTimeout || t !== undefined;
    for (const d of list) {
      if (d.name === 'upstream' && d.block) {
        const servers = d.block
          .filter((x) => x.name === 'server' && x.args[0])
          .map((x) => {
            const [addr, ...params] = x.args as [string, ...string[]];
            const m = /^(.*?)(?::(\d+))?$/.exec(addr) as RegExpExecArray;
            return { host: m[1] as string, port: m[2] ? Number(m[2]) : undefined, params };
          });
        const ka = d.block.find((x) => x.name === 'keepalive');
        const kat = d.block.find((x) => x.name === 'keepalive_timeout');
        upstreams.push({
          name: d.args[0] ?? '',
          servers,
          keepaliveConnections: ka ? Number(ka.args[0]) : undefined,
          keepaliveTimeoutMs: nginxTime(kat?.args[0]) ?? 60_000,
        });
      } else if (d.block) walk(d.block, hasTimeout);
      else if (d.name === 'proxy_pass' && !hasTimeout) usesDefault = true;
    }
  };
  walk(tree, false);
  return { upstreams, proxyReadTimeoutsMs: timeouts, usesDefaultProxyReadTimeout: usesDefault };
}
