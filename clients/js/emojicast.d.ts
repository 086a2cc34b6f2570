// Type declarations of @emojicast/client (emojicast.js), written by hand.

/** Most taps one send may carry (docs/api.md: count 1 to 20). */
export const MAX_COUNT: 20;
/** Bound of one request, from the start to the end of its answer, in ms. */
export const REQUEST_TIMEOUT_MS: number;
/** Shortest wait between polls whatever next_ms says, in ms. */
export const MIN_POLL_MS: number;
/** Longest wait between polls whatever next_ms says, in ms. */
export const MAX_POLL_MS: number;
/** Spread of each wait between polls: next_ms plus or minus this fraction. */
export const POLL_JITTER: number;
/** How long quick taps of one emoji are gathered into one send, in ms. */
export const BATCH_MS: number;
/** The shortest poll interval in data saver mode, unless the server's is longer, in ms. */
export const DATA_SAVER_FLOOR_MS: number;
/** Tries of one send: it is sent again, with the same id, after a failure that may pass. */
export const SEND_ATTEMPTS: number;

/** Waits after failures in a row: initialMs, times multiplier per failure, at most maxMs, spread over plus or minus jitter. */
export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  readonly jitter: number;
}
/** 500 ms doubling to 8 s, plus or minus 50%. */
export const BACKOFF: Backoff;

/** A non-2xx answer of the API (or of a proxy in front of it). */
export class APIError extends Error {
  constructor(status: number, code: string, message: string, retryAfterMs: number);
  readonly name: "APIError";
  /** The HTTP status. */
  readonly status: number;
  /** The API's snake_case error code, or http_<status> when a proxy answered. */
  readonly code: string;
  /** The Retry-After the answer carried, in ms; 0 when none. */
  readonly retryAfterMs: number;
  /** Whether the same request may succeed later: 408, 429 and 5xx. */
  readonly temporary: boolean;
}

/** The wait after the failures-th failure in a row, given r uniform in [0, 1); retryAfterMs is a floor. */
export function backoffMs(failures: number, retryAfterMs: number, r: number, b?: Backoff): number;

export interface IntervalOptions {
  /** Whether data saver is on. Default: false. */
  dataSaver?: boolean;
  /** Data saver's shortest interval. Default: DATA_SAVER_FLOOR_MS. */
  floorMs?: number;
  /** The server's longest next_ms (watch's max_next_ms). Default: MAX_POLL_MS. */
  maxNextMs?: number;
}
/** The poll interval a client keeps: next_ms, or with data saver max(next_ms, min(floorMs, maxNextMs)). */
export function pollIntervalMs(nextMs: number, options?: IntervalOptions): number;
/** An interval spread over plus or minus POLL_JITTER given r uniform in [0, 1), within [MIN_POLL_MS, MAX_POLL_MS]. */
export function pollWaitMs(intervalMs: number, r: number): number;

/** A danmaku comment: who wrote it and its text, cleaned and masked by the server. */
export interface Comment {
  u: string;
  x: string;
  /** Unique in the deployment; a later bucket's `r` may name it. */
  id?: string;
}

/** One second of a stream: the reactions accepted during [t, t+1). */
export interface Bucket {
  /** The second, in Unix seconds of the server's clock. */
  t: number;
  /** Emoji id to estimated reactions in the second. */
  c: Record<string, number>;
  /** Emojis whose count reached the burst threshold: show one effect, not that many emojis. */
  burst?: string[];
  /** The second's comments, oldest first. */
  m?: Comment[];
  /** Ids of earlier comments an operator deleted: take them down if shown. */
  r?: string[];
}

/** A poll answer (docs/api.md). */
export interface PollAnswer {
  now: number;
  next_ms: number;
  sample: number;
  viewers: number;
  gap?: boolean;
  buckets: Bucket[];
}

/** The buckets after cursor, oldest first, each second once, and the new cursor (max(cursor, now)). */
export function freshBuckets(answer: Pick<PollAnswer, "now" | "buckets">, cursor: number): { buckets: Bucket[]; cursor: number };
/** The URL that polls pull for the seconds after cursor, asking for the compact body (v=2) unless compact is false. */
export function pollURL(pull: string, cursor: number, compact?: boolean): string;
/** Reads a poll answer's JSON, compact (read with the stream's emoji set, in watch's order) or v1, into v1's shape; throws when it lacks now. */
export function readPoll(answer: unknown, emojis?: Pick<Emoji, "id">[]): PollAnswer;
/** Retry-After (seconds or an HTTP date) in ms; 0 when absent or unreadable; at most an hour. */
export function parseRetryAfter(value: string | null | undefined): number;

export interface RequestOptions {
  signal?: AbortSignal;
  /** The fetch to use. Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** Default: REQUEST_TIMEOUT_MS. */
  timeoutMs?: number;
}
/** One request: its JSON answer, or an APIError (non-2xx) or the network's error. */
export function request(url: string, init?: RequestInit, options?: RequestOptions): Promise<any>;

/** An emoji of the stream's set. */
export interface Emoji {
  id: string;
  glyph: string;
}

/** The watch answer (docs/api.md). */
export interface WatchAnswer {
  stream: string;
  user: string;
  pull: string;
  push: string;
  token: string;
  since: number;
  next_ms: number;
  /** The longest next_ms the server advises; absent from older servers. */
  max_next_ms?: number;
  sample: number;
  viewers: number;
  /** The deployment's whole emoji set, in display order: the list compact counts index. */
  emojis: Emoji[];
  /** The ids of the emojis the stream takes, when an operator restricted them: offer only those. */
  allowed?: string[];
}

/** What one poll brought. */
export interface Update {
  /** The newest second the server has complete. */
  now: number;
  /** The server's advised interval. */
  nextMs: number;
  /** The interval the viewer keeps: nextMs, stretched in data saver mode. */
  intervalMs: number;
  /** Whether data saver was on. */
  dataSaver: boolean;
  /** The probability with which taps are forwarded. */
  sample: number;
  /** The estimated viewers of the stream. */
  viewers: number;
  /** True when the cursor was older than the server's window: seconds were lost. */
  gap: boolean;
  /** The seconds not delivered before, oldest first, each once. */
  buckets: Bucket[];
  /** The cursor after this poll. */
  cursor: number;
}

export type ViewerState = "connecting" | "live" | "retrying" | "failed";

export interface ViewerOptions {
  /** The stream id. */
  stream: string;
  /** The viewer's user id, as the server in the open mode takes it; a server with tokens names the viewer itself. */
  user: string;
  /** An identity token (a JWT) the application's backend signed for this viewer: shown to watch, sent with taps and comments. */
  token?: string;
  /** The server's base URL, such as http://localhost:8080. Default in a page: the page's address. Required elsewhere. */
  server?: string;
  /** Called once watch succeeded. */
  onWatch?: (watch: WatchAnswer) => void;
  /** Called with each poll answer that brought something. */
  onUpdate?: (update: Update) => void;
  /** Called when the state changes; "retrying" carries the wait and the error, "failed" the error. */
  onState?: (state: ViewerState, detail?: { waitMs: number; error: unknown } | unknown) => void;
  /** Uniform random numbers in [0, 1), for jitter and sampling. Default: Math.random. */
  random?: () => number;
  /** The fetch to use. Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** Data saver: poll at most every dataSaverFloorMs, within the server's bounds. Default: the browser's navigator.connection.saveData, read before each poll (off where there is none). */
  dataSaver?: boolean;
  /** Default: DATA_SAVER_FLOOR_MS. */
  dataSaverFloorMs?: number;
  /** Send If-None-Match itself instead of leaving revalidation to the browser's cache. Default: true outside pages. */
  etag?: boolean;
  /** Default: REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
  /** The poll body to ask for: "compact" (v=2, a third of the bytes) or "v1". A server that ignores v answers v1, which is read too. Default: "compact". */
  body?: "compact" | "v1";
  /** Called when the server refuses the token (401): resolves to a fresh one (from your backend), and the request is sent again with it, once. Without it, a token watch gave (anonymous) is renewed with a new watch; a refused JWT is an error. */
  renewToken?: () => Promise<string> | string;
}

export interface ViewerStats {
  polls: number;
  notModified: number;
  failures: number;
  /** GETs (polls, watches) sent again at once after a network error: a kept-alive connection an edge closed as the request went out. */
  resent: number;
  sends: number;
  tapsSent: number;
  tapsSampledOut: number;
  comments: number;
}

/** Watches one stream, polls it and sends its viewer's taps and comments. */
export class Viewer {
  constructor(options: ViewerOptions);
  readonly stream: string;
  /** The viewer's user id: as given, until watch names it. */
  readonly user: string;
  /** Whether a comment from a poll is one this viewer sent (same user and text, masked or not, within 30 s); a user id alone proves nothing. */
  isMine(comment: Comment): boolean;
  /** The probability with which taps are forwarded, as the server last advised. */
  readonly sample: number;
  /** The watch answer, once run has watched. */
  readonly watch?: WatchAnswer;
  readonly stats: ViewerStats;
  /** Data saver as set; undefined follows the browser's setting. May be changed at any time. */
  dataSaver: boolean | undefined;
  /** Whether data saver is on now. */
  readonly savingData: boolean;
  /** Watches the stream, then polls until stop; resolves once stopped or failed for good. */
  run(): Promise<void>;
  /** Stops polling and drops taps not yet sent. */
  stop(): void;
  /** Records one tap; returns whether it was forwarded (sampled in). */
  tap(emoji: string): boolean;
  /** Resolves once no forwarded taps wait to be sent or are on their way. */
  settled(): Promise<void>;
  /** Sends a comment: "accepted" (broadcast) or "shed" (over the stream's budget: its sender's eyes only). */
  comment(text: string): Promise<"accepted" | "shed">;
}
