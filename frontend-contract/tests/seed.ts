// The running, seeded Backline the contract tests talk to, as described by the seed file
// tests/contract/seeded_backline.py writes (its path in BACKLINE_CONTRACT_SEED).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';

export interface Seed {
  /** http://127.0.0.1:PORT */
  url: string;
  /** The GraphQL endpoint over HTTP, and the same over websockets. */
  graphqlUrl: string;
  wsUrl: string;
  email: string;
  password: string;
  handle: string;
  /** A login's token pair (the access token lasts 15 minutes). */
  accessToken: string;
  refreshToken: string;
  /** An API token (scopes read and write) limited to the trusted documents. */
  persistedOnlyToken: string;
  bandId: string;
  bandSlug: string;
  /** The band's LOCAL_FOLDER source, scanned, and the folder it indexes. */
  sourceId: string;
  libraryDir: string;
  /** A take outside the source, and where in it to copy the take before a rescan. */
  stagingFile: string;
  stagingTarget: string;
  /** The tracks by title (groove, with two takes; new song, with one), and their takes
   * (groove's newest first, then new song's); every take READY, analysed and transcoded. */
  trackIds: string[];
  versionIds: string[];
}

const HOW_TO_RUN =
  'run via `make test` (tests/contract/test_js_clients.py) or start a server with ' +
  '`.venv/bin/python -m tests.contract.seeded_backline --seed-file /tmp/seed.json` and set ' +
  'BACKLINE_CONTRACT_SEED=/tmp/seed.json';

let cached: Seed | undefined;

/** The seed; a clear error when the tests were started without a server. */
export function loadSeed(): Seed {
  if (cached) return cached;
  const path = process.env.BACKLINE_CONTRACT_SEED;
  if (!path) {
    throw new Error(`BACKLINE_CONTRACT_SEED is not set: these tests need a running Backline; ${HOW_TO_RUN}.`);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`BACKLINE_CONTRACT_SEED names ${path}, which cannot be read (${String(error)}); ${HOW_TO_RUN}.`);
  }
  cached = JSON.parse(text) as Seed;
  return cached;
}

/** sha256 hex of a UTF-8 string: the APQ hash of a document text. */
export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The manifest hash GraphQL Code Generator's client preset embeds in each typed
 * document (persistedDocuments: embedHashInDocument); undefined for an ad hoc document. */
export function embeddedHash(document: unknown): string | undefined {
  const meta = (document as { __meta__?: { hash?: unknown } } | null)?.__meta__;
  return typeof meta?.hash === 'string' ? meta.hash : undefined;
}

/** The trusted documents manifest the server loaded (sha256 hex -> document text). */
export function loadManifest(): Record<string, string> {
  const url = new URL('../persisted-documents.json', import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as Record<string, string>;
}

/** What a client sent over HTTP, as the server saw it (GET parameters parsed). */
export interface RecordedRequest {
  method: string;
  /** The JSON body of a POST, or the GraphQL parameters of a GET. */
  body: {
    query?: unknown;
    operationName?: unknown;
    variables?: unknown;
    extensions?: { persistedQuery?: { version: number; sha256Hash: string } } & Record<string, unknown>;
  };
  /** The parsed answer. */
  response: { data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
}

/** A fetch that records every GraphQL request and its answer, for clients that take one. */
export function recordingFetch(): { fetch: typeof fetch; requests: RecordedRequest[] } {
  const requests: RecordedRequest[] = [];
  const recording: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const body = method === 'GET' ? fromSearchParams(url.searchParams) : JSON.parse(String(init?.body ?? '{}'));
    const response = await fetch(input, init);
    const answer = await response.clone().json();
    requests.push({ method, body, response: answer });
    return response;
  };
  return { fetch: recording, requests };
}

function fromSearchParams(params: URLSearchParams): RecordedRequest['body'] {
  const json = (name: string) => {
    const value = params.get(name);
    return value === null ? undefined : JSON.parse(value);
  };
  return {
    query: params.get('query') ?? undefined,
    operationName: params.get('operationName') ?? undefined,
    variables: json('variables'),
    extensions: json('extensions'),
  };
}

/** The `extensions.code` of each error of an answer. */
export function errorCodes(response: RecordedRequest['response']): unknown[] {
  return (response.errors ?? []).map((error) => error.extensions?.code);
}

/** A `node(id)` answer as the type asked for. The trusted documents do not select
 * `__typename`, so the check is a field only that type has in the selection. */
export function nodeAs<N extends { __typename?: string }, T extends NonNullable<N['__typename']>>(
  node: N | null | undefined,
  typename: T,
  field: Exclude<keyof Extract<N, { __typename?: T }>, '__typename' | 'id'>,
): Extract<N, { __typename?: T }> {
  if (!node || !(field in node)) {
    throw new Error(`expected a ${typename} (with ${String(field)}), got ${JSON.stringify(node)}`);
  }
  return node as Extract<N, { __typename?: T }>;
}

/** The manifest's text of a generated document (what the server runs for its hash). */
export function trustedText(document: unknown): { hash: string; text: string } {
  const hash = embeddedHash(document);
  const text = hash ? loadManifest()[hash] : undefined;
  if (!hash || !text) throw new Error(`not a trusted document: ${JSON.stringify(document).slice(0, 200)}`);
  return { hash, text };
}

/** POST an operation by its manifest hash alone (no client library): its data, or an
 * Error carrying the answer's errors. For setting up what a test then observes. */
export async function postByHash<R, V>(
  document: TypedDocumentNode<R, V>,
  variables: V,
  token: string,
): Promise<R> {
  const { hash } = trustedText(document);
  const response = await fetch(loadSeed().graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ variables, extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }),
  });
  const answer = (await response.json()) as { data?: R; errors?: unknown[] };
  if (answer.errors || !answer.data) {
    throw new Error(`${response.status}: ${JSON.stringify(answer.errors)}`);
  }
  return answer.data;
}
