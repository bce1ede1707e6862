// PoD stream tokens: where each comes from, and which streams would hold one token in two
// sessions at once. The PoD Log API "does not allow use of the same token for more than one
// session at the same time" (409): two live streams on one token would take turns being
// refused for as long as both run, and a backfill token that is a live token waits for a
// session that never ends.

export interface PodStreamTokens {
  name: string;
  token?: string | undefined;
  tokenEnv?: string | undefined;
  backfillToken?: string | undefined;
  backfillTokenEnv?: string | undefined;
}

/** A stream's token: from the config, or from the environment variable it names (how start reads it). */
export function resolveToken(value: string | undefined, envName: string | undefined, env: NodeJS.ProcessEnv): { token?: string; problem?: string } {
  if (value !== undefined) return { token: value };
  if (envName === undefined) return {};
  const v = env[envName];
  return v ? { token: v } : { problem: `environment variable ${envName} is not set` };
}

interface Holder {
  stream: number;
  key: 'token' | 'backfillToken';
  /** The session it opens is live (held for as long as the stream runs) or an archive request. */
  live: boolean;
  value?: string | undefined;
  envName?: string | undefined;
}

export interface SharedTokenIssue {
  /** Index of the later of the two streams, and the key to change there. */
  stream: number;
  key: 'token' | 'backfillToken';
  message: string;
}

/**
 * Pairs of streams whose sessions would share a token. Without `env`, tokens are compared
 * as the config gives them (a `token` value, a `tokenEnv` name); with it, also by the value
 * each variable holds (resolved as start resolves it). Two backfill tokens may be shared:
 * archive requests end, so they take turns (409, then `pod.conflictRetry`).
 * Messages never include a token's value.
 */
export function sharedTokenIssues(streams: readonly PodStreamTokens[], env?: NodeJS.ProcessEnv): SharedTokenIssue[] {
  const holders: Holder[] = [];
  streams.forEach((s, i) => {
    holders.push({ stream: i, key: 'token', live: true, value: s.token, envName: s.tokenEnv });
    if (s.backfillToken !== undefined || s.backfillTokenEnv !== undefined) {
      holders.push({ stream: i, key: 'backfillToken', live: false, value: s.backfillToken, envName: s.backfillTokenEnv });
    }
  });
  const issues: SharedTokenIssue[] = [];
  const reported = new Set<string>();
  for (let j = 0; j < holders.length; j++) {
    for (let i = 0; i < j; i++) {
      const a = holders[i]!;
      const b = holders[j]!;
      if (a.stream === b.stream && a.key === b.key) continue;
      if (!a.live && !b.live) continue;
      const why = sameToken(a, b, env);
      if (!why) continue;
      const first = Math.min(a.stream, b.stream);
      const later = Math.max(a.stream, b.stream);
      const pair = `${first}/${later}`;
      if (reported.has(pair)) continue;
      reported.add(pair);
      const names = first === later ? `stream '${streams[first]!.name}' uses its token as its backfillToken` : `streams '${streams[first]!.name}' and '${streams[later]!.name}' use the same token`;
      const laterHolder = first === later ? (a.key === 'backfillToken' ? a : b) : a.stream === later ? a : b;
      issues.push({
        stream: later,
        key: laterHolder.key,
        message: `${names} (${why}); the PoD Log API allows one session per token, so one of them would be refused (409) for as long as both run: ${first === later ? 'drop backfillToken (archive requests then take turns with the live session) or give it a token of its own' : 'give each stream a token of its own'}`,
      });
    }
  }
  return issues;
}

function describe(h: Holder): string {
  return h.envName !== undefined ? `${h.key}Env ${h.envName}` : h.key;
}

/** Why two holders carry one token, or undefined when they do not (or it cannot be told). */
function sameToken(a: Holder, b: Holder, env: NodeJS.ProcessEnv | undefined): string | undefined {
  if (a.value !== undefined && a.value === b.value) return `the same ${a.key === b.key ? a.key : `${describe(a)} and ${describe(b)}`} value`;
  if (a.envName !== undefined && a.envName === b.envName) return a.key === b.key ? `${describe(a)}` : `${describe(a)} and ${describe(b)}`;
  if (!env) return undefined;
  const x = resolveToken(a.value, a.envName, env).token;
  const y = resolveToken(b.value, b.envName, env).token;
  if (x === undefined || x !== y) return undefined;
  return `${describe(a)} and ${describe(b)} hold the same value`;
}
