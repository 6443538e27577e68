// urql with its persisted exchange in persisted-only mode (enforcePersistedQueries: it
// never sends a document text, not even after PersistedQueryNotFound), signed in with an
// API token limited to the trusted documents: the same operations as the Apollo test run
// by hash alone, and anything that is not a trusted document is refused.
import { Client, cacheExchange, fetchExchange, gql } from '@urql/core';
import { persistedExchange } from '@urql/exchange-persisted';
import { afterEach, describe, expect, test } from 'vitest';

import {
  AddCommentDocument,
  BandSessionsDocument,
  BandSourcesDocument,
  BandTracksDocument,
  EditCommentDocument,
  LoginDocument,
  ReactDocument,
  ResolveCommentDocument,
  TrackDocument,
  UnreactDocument,
  VersionPageDocument,
  ViewerDocument,
} from '../src/gql/graphql';
import {
  embeddedHash,
  errorCodes,
  loadManifest,
  loadSeed,
  nodeAs,
  recordingFetch,
  sha256,
  type RecordedRequest,
} from './seed';

const seed = loadSeed();

/** A urql client in persisted-only mode: hashes from the generated documents (the
 * manifest's), mutations persisted too, queries over GET as the exchange prefers. */
function urqlClient(token?: string): { client: Client; requests: RecordedRequest[] } {
  const { fetch, requests } = recordingFetch();
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const client = new Client({
    url: seed.graphqlUrl,
    fetch,
    fetchOptions: { headers },
    exchanges: [
      cacheExchange,
      persistedExchange({
        enforcePersistedQueries: true,
        enableForMutation: true,
        generateHash: async (query, document) => embeddedHash(document) ?? sha256(query),
      }),
      fetchExchange,
    ],
  });
  return { client, requests };
}

/** Every request named a manifest hash, carried no document text and was answered
 * without errors. */
function expectByTrustedHash(requests: RecordedRequest[]): void {
  const manifest = loadManifest();
  for (const { method, body, response } of requests) {
    const name = `${method} ${String(body.operationName)}`;
    expect(body.query, `${name} sent its document text`).toBeUndefined();
    const hash = body.extensions?.persistedQuery?.sha256Hash;
    expect(hash && hash in manifest, `${name}'s hash ${hash} is not in the manifest`).toBe(true);
    expect(response.errors, `${name} answered errors`).toBeUndefined();
  }
}

describe('urql persistedExchange, persisted-only, with a persisted-only API token', () => {
  const { client, requests } = urqlClient(seed.persistedOnlyToken);

  afterEach(() => {
    expectByTrustedHash(requests.splice(0));
  });

  test('Login signs in by hash', async () => {
    const anonymous = urqlClient();
    const result = await anonymous.client
      .mutation(LoginDocument, { input: { email: seed.email, password: seed.password } })
      .toPromise();
    expect(result.error).toBeUndefined();
    expect(result.data?.login.user.email).toBe(seed.email);
    expect(result.data?.login.accessToken).toMatch(/\S{20,}/);
    expect(anonymous.requests).toHaveLength(1);
    expectByTrustedHash(anonymous.requests);
  });

  test('Viewer', async () => {
    const result = await client.query(ViewerDocument, {}).toPromise();
    expect(result.error).toBeUndefined();
    expect(result.data?.viewer?.handle).toBe(seed.handle);
    expect(result.data?.viewer?.bands.nodes.map((b) => b.id)).toContain(seed.bandId);
  });

  test('BandTracks pages with first and after', async () => {
    const first = await client.query(BandTracksDocument, { bandId: seed.bandId, first: 1 }).toPromise();
    expect(first.error).toBeUndefined();
    const page1 = first.data!.band.tracks;
    expect(page1.totalCount).toBeGreaterThanOrEqual(2);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    const second = await client
      .query(BandTracksDocument, { bandId: seed.bandId, first: 1, after: page1.pageInfo.endCursor })
      .toPromise();
    expect(second.error).toBeUndefined();
    const page2 = second.data!.band.tracks;
    expect(page2.nodes).toHaveLength(1);
    // Ordered by title: "groove" first, then "late idea" (once a test added it) or "new song".
    expect(page1.nodes[0].title).toBe('groove');
    expect(page2.nodes[0].title.localeCompare(page1.nodes[0].title)).toBe(1);
  });

  test('Track', async () => {
    const result = await client.query(TrackDocument, { id: seed.trackIds[0] }).toPromise();
    expect(result.error).toBeUndefined();
    const track = nodeAs(result.data?.node, 'Track', 'title');
    expect(track.title).toBe('groove');
    expect(track.versions.totalCount).toBe(2);
  });

  test('VersionPage', async () => {
    const result = await client
      .query(VersionPageDocument, { id: seed.versionIds[0], commentsFirst: 10, samplesPerPixel: 256 })
      .toPromise();
    expect(result.error).toBeUndefined();
    const version = nodeAs(result.data?.node, 'TrackVersion', 'streams');
    expect(version.status).toBe('READY');
    expect(version.streams?.hls).toContain('.m3u8');
    expect(version.waveform?.samplesPerPixel).toBe(256);
    expect(version.waveform?.data.length).toBeGreaterThan(0);
    expect(version.analysis?.bpm).toBeCloseTo(120, -1);
    expect(version.analysis).toMatchObject({ key: 'A', scale: 'minor' });
  });

  test('AddComment, a reply, EditComment, ResolveComment, React and Unreact', async () => {
    const versionId = seed.versionIds[seed.versionIds.length - 1];
    const added = await client
      .mutation(AddCommentDocument, { input: { versionId, body: 'tempo drags here (urql)', atMs: 3000 } })
      .toPromise();
    expect(added.error).toBeUndefined();
    const comment = added.data!.addComment;
    expect(comment).toMatchObject({ atMs: 3000, resolved: false, version: { id: versionId } });

    const reply = await client
      .mutation(AddCommentDocument, { input: { versionId, body: 'it does', parentId: comment.id } })
      .toPromise();
    expect(reply.data?.addComment.parent?.id).toBe(comment.id);

    const edited = await client.mutation(EditCommentDocument, { id: comment.id, body: 'tempo drags (urql)' }).toPromise();
    expect(edited.data?.editComment.body).toBe('tempo drags (urql)');

    const resolved = await client.mutation(ResolveCommentDocument, { id: comment.id, resolved: true }).toPromise();
    expect(resolved.data?.resolveComment).toMatchObject({ id: comment.id, resolved: true });

    const reacted = await client.mutation(ReactDocument, { targetId: comment.id, kind: 'LOVE' }).toPromise();
    expect(reacted.data?.react.counts).toContainEqual(
      expect.objectContaining({ kind: 'LOVE', count: 1, viewerReacted: true }),
    );
    const unreacted = await client.mutation(UnreactDocument, { targetId: comment.id, kind: 'LOVE' }).toPromise();
    expect(unreacted.data?.unreact.total).toBe(0);

    const page = await client
      .query(VersionPageDocument, { id: versionId, commentsFirst: 50 }, { requestPolicy: 'network-only' })
      .toPromise();
    const thread = nodeAs(page.data?.node, 'TrackVersion', 'comments').comments.nodes.find((c) => c.id === comment.id);
    expect(thread).toMatchObject({ resolved: true, body: 'tempo drags (urql)' });
    expect(thread?.replies.nodes.map((r) => r.body)).toEqual(['it does']);
  });

  test('BandSessions', async () => {
    const result = await client.query(BandSessionsDocument, { bandId: seed.bandId }).toPromise();
    expect(result.error).toBeUndefined();
    const dates = result.data!.band.sessions.nodes.map((s) => s.date);
    expect(dates).toEqual(expect.arrayContaining(['2023-10-15', '2023-10-22']));
  });

  test('BandSources', async () => {
    const result = await client.query(BandSourcesDocument, { bandId: seed.bandId }).toPromise();
    expect(result.error).toBeUndefined();
    const source = result.data!.band.sources.find((s) => s.id === seed.sourceId);
    expect(source).toMatchObject({ kind: 'LOCAL_FOLDER', root: seed.libraryDir });
  });
});

describe('persisted-only: what is not a trusted document is refused', () => {
  const adHocText = `query AdHoc${Date.now()} { viewer { handle } }`;

  test('an ad hoc query sent in full is PERSISTED_QUERY_REQUIRED', async () => {
    // A plain urql client: no persisted exchange, so the document goes as text.
    const { fetch, requests } = recordingFetch();
    const plain = new Client({
      url: seed.graphqlUrl,
      fetch,
      preferGetMethod: false,
      fetchOptions: { headers: { authorization: `Bearer ${seed.persistedOnlyToken}` } },
      exchanges: [fetchExchange],
    });
    const result = await plain.query(gql(adHocText), {}).toPromise();
    expect(result.data ?? null).toBeNull();
    expect(result.error?.graphQLErrors.map((e) => e.extensions?.code)).toEqual(['PERSISTED_QUERY_REQUIRED']);
    expect(requests).toHaveLength(1);
    expect(typeof requests[0].body.query).toBe('string');
  });

  test('an unknown hash is PersistedQueryNotFound, and the exchange does not send the text', async () => {
    const { client, requests } = urqlClient(seed.persistedOnlyToken);
    const result = await client.query(gql(adHocText), {}).toPromise();
    expect(result.error?.graphQLErrors.map((e) => e.extensions?.code)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    expect(requests).toHaveLength(1);
    expect(requests[0].body.query).toBeUndefined();
    expect(requests[0].body.extensions?.persistedQuery?.sha256Hash).toMatch(/^[0-9a-f]{64}$/);
  });

  test('a document known to the APQ store but not trusted is PERSISTED_QUERY_REQUIRED', async () => {
    // Registered the APQ way by a user's own login (hash and text once) ...
    const hash = sha256(adHocText);
    const register = await fetch(seed.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${seed.accessToken}` },
      body: JSON.stringify({ query: adHocText, extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }),
    });
    expect((await register.json()).errors).toBeUndefined();
    // ... and then asked for by that hash with the persisted-only token.
    const refused = await fetch(seed.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${seed.persistedOnlyToken}` },
      body: JSON.stringify({ extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }),
    });
    const answer = (await refused.json()) as RecordedRequest['response'];
    expect(answer.data ?? null).toBeNull();
    expect(errorCodes(answer)).toEqual(['PERSISTED_QUERY_REQUIRED']);
  });
});
