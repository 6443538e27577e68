// GraphQL for the page: persisted queries only. Every operation goes out as its sha256
// (the client preset's `__meta__.hash`) in `extensions.persistedQuery`, never as text:
// the server runs it from the trusted manifest (frontend-contract/persisted-documents.json).
// Queries and mutations over fetch to /graphql; subscriptions over graphql-ws.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { createClient, type Client } from 'graphql-ws';

type Persisted = { __meta__?: { hash?: string } };

export type GraphQLErrorShape = {
  message: string;
  path?: (string | number)[];
  extensions?: { code?: string; [key: string]: unknown };
};

export class GraphQLRequestError extends Error {
  constructor(
    readonly operation: string,
    readonly errors: GraphQLErrorShape[],
    readonly status?: number,
  ) {
    const described = errors.map((e) => `${e.extensions?.code ?? 'ERROR'} ${e.message}`);
    super(`${operation}: ${described.join('; ')}`);
    this.name = 'GraphQLRequestError';
  }

  get codes(): string[] {
    return this.errors.map((e) => e.extensions?.code ?? 'ERROR');
  }
}

/** The document's sha256 as the trusted manifest knows it; a document without one is a
 *  codegen set-up error, not something to paper over by sending the text. */
export function hashOf(document: TypedDocumentNode<unknown, never> | object): string {
  const hash = (document as Persisted).__meta__?.hash;
  if (!hash || !/^[0-9a-f]{64}$/.test(hash)) {
    throw new Error('This document carries no sha256 hash: run codegen with persistedDocuments.');
  }
  return hash;
}

/** The operation's name, for the request body and for messages (null if not in the AST). */
export function operationNameOf(document: object): string | undefined {
  const definitions = (document as { definitions?: { kind: string; name?: { value: string } }[] })
    .definitions;
  return definitions?.find((d) => d.kind === 'OperationDefinition')?.name?.value;
}

function persistedBody(document: object, variables: unknown) {
  return {
    operationName: operationNameOf(document),
    variables: (variables ?? {}) as Record<string, unknown>,
    extensions: { persistedQuery: { version: 1, sha256Hash: hashOf(document) } },
  };
}

export class Api {
  private token: string | null = null;
  private ws: Client | null = null;

  constructor(private readonly endpoint = '/graphql') {}

  get signedIn(): boolean {
    return this.token !== null;
  }

  /** Keep the access token in memory only (a reload signs out: a reference page). */
  useToken(token: string | null): void {
    this.token = token;
    // A socket authenticates once, in connection_init: a new token needs a new socket.
    void this.ws?.dispose();
    this.ws = null;
  }

  async request<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
    const name = operationNameOf(document) ?? hashOf(document).slice(0, 12);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
    };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const response = await fetch(this.endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify(persistedBody(document, variables)),
    });
    let body: { data?: R | null; errors?: GraphQLErrorShape[] };
    try {
      body = await response.json();
    } catch {
      const message = `HTTP ${response.status}, not JSON`;
      throw new GraphQLRequestError(name, [{ message }], response.status);
    }
    if (body.errors?.length) throw new GraphQLRequestError(name, body.errors, response.status);
    if (body.data == null) {
      throw new GraphQLRequestError(name, [{ message: 'no data' }], response.status);
    }
    return body.data;
  }

  /** Subscribe; returns the function that stops it. */
  subscribe<R, V>(
    document: TypedDocumentNode<R, V>,
    variables: V,
    sink: { next: (data: R) => void; error: (error: Error) => void; complete: () => void },
  ): () => void {
    const name = operationNameOf(document) ?? 'subscription';
    // graphql-ws insists on a string `query` (its validateMessage), so the payload carries
    // an empty one that the socket's JSON replacer drops: on the wire there is only the
    // hash, which Backline resolves before it runs the operation (backend/graphql/router.py).
    const payload = { ...persistedBody(document, variables), query: '' };
    hashOnly.add(payload);
    return this.socket().subscribe<R>(payload, {
      next: (result) => {
        const errors = result.errors as GraphQLErrorShape[] | undefined;
        if (errors?.length) sink.error(new GraphQLRequestError(name, errors));
        else if (result.data) sink.next(result.data as R);
      },
      error: (error) => {
        if (Array.isArray(error)) {
          sink.error(new GraphQLRequestError(name, error as GraphQLErrorShape[]));
        }
        else if (error instanceof Error) sink.error(error);
        else sink.error(new Error(`${name}: the socket closed (${describeClose(error)})`));
      },
      complete: sink.complete,
    });
  }

  private socket(): Client {
    if (!this.ws) {
      const url = new URL(this.endpoint, location.href);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      const token = this.token;
      this.ws = createClient({
        url: url.href,
        // Backline reads the same value as the HTTP header (ARCHITECTURE.md, Auth).
        connectionParams: token ? { authorization: `Bearer ${token}` } : {},
        lazy: true,
        retryAttempts: 3,
        jsonMessageReplacer: dropPlaceholderQuery,
      });
    }
    return this.ws;
  }
}

// Subscribe payloads whose `query` is only there to please graphql-ws's validation.
const hashOnly = new WeakSet<object>();

function dropPlaceholderQuery(this: unknown, key: string, value: unknown): unknown {
  // `this` is the object holding `key`: only a persisted payload's own `query` goes, never
  // a variable that happens to be called query (TrackFilter.query).
  return key === 'query' && hashOnly.has(this as object) ? undefined : value;
}

function describeClose(event: unknown): string {
  const close = event as { code?: number; reason?: string } | null;
  return close?.code ? `${close.code} ${close.reason ?? ''}`.trim() : String(event);
}
