// Apollo Client 4 with its persisted-query link runs the front end's operations by hash
// against a real Backline: the server knows every one of them from the trusted documents
// manifest, so no request carries a document text. An operation that is not in the
// manifest gets PersistedQueryNotFound, and the link then registers it (the APQ protocol).
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { print } from 'graphql';
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

/** An Apollo client whose persisted-query link hashes as the generated documents say
 * (the manifest's hash embedded by the client preset), else sha256 of the printed text,
 * as the link's own default does. */
function apolloClient(token?: string): { client: ApolloClient; requests: RecordedRequest[] } {
  const { fetch, requests } = recordingFetch();
  const persisted = new PersistedQueryLink({
    generateHash: (document) => embeddedHash(document) ?? sha256(print(document)),
  });
  const http = new HttpLink({
    uri: seed.graphqlUrl,
    fetch,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const client = new ApolloClient({ link: ApolloLink.from([persisted, http]), cache: new InMemoryCache() });
  return { client, requests };
}

/** Every request went by a hash of the manifest, without its text, and was answered
 * without errors: the server resolved each from its trusted documents. */
function expectByTrustedHash(requests: RecordedRequest[]): void {
  const manifest = loadManifest();
  for (const { body, response } of requests) {
    const name = String(body.operationName);
    expect(body.query, `${name} sent its document text`).toBeUndefined();
    const hash = body.extensions?.persistedQuery?.sha256Hash;
    expect(hash && hash in manifest, `${name}'s hash ${hash} is not in the manifest`).toBe(true);
    expect(response.errors, `${name} answered errors`).toBeUndefined();
  }
}

const OPERATIONS = {
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
};

describe('Apollo Client with PersistedQueryLink, trusted documents', () => {
  const { client, requests } = apolloClient(seed.accessToken);

  afterEach(() => {
    expectByTrustedHash(requests.splice(0));
  });

  test('the trusted documents are what Apollo executes (they select __typename)', () => {
    // InMemoryCache adds __typename to every selection set it sends, and needs it back to
    // match fragments and inline fragments. The link sends only the manifest's hash, so
    // the server runs the manifest's text: it must already hold every __typename, or
    // Apollo silently drops the fields under fragments from its answers.
    const cache = new InMemoryCache();
    const lacking = Object.entries(OPERATIONS)
      .filter(([, document]) => print(cache.transformDocument(document)) !== print(document))
      .map(([name]) => name.replace(/Document$/, ''));
    expect(
      lacking,
      'these documents lack __typename selections Apollo adds; generate them with the ' +
        "client preset's documentTransforms: [addTypenameSelectionDocumentTransform]",
    ).toEqual([]);
  });

  test('Login signs in with the seeded account', async () => {
    const anonymous = apolloClient();
    const { data } = await anonymous.client.mutate({
      mutation: LoginDocument,
      variables: { input: { email: seed.email, password: seed.password } },
    });
    expect(data?.login.accessToken).toMatch(/\S{20,}/);
    expect(data?.login.refreshToken).toMatch(/\S{20,}/);
    expect(data?.login.user.email).toBe(seed.email);
    expect(anonymous.requests).toHaveLength(1);
    expectByTrustedHash(anonymous.requests);
  });

  test('Viewer lists the band', async () => {
    const { data } = await client.query({ query: ViewerDocument });
    expect(data?.viewer?.handle).toBe(seed.handle);
    expect(data?.viewer?.email).toBe(seed.email);
    const band = data?.viewer?.bands.nodes.find((each) => each.id === seed.bandId);
    expect(band).toMatchObject({ slug: seed.bandSlug, viewerRole: 'ADMIN' });
  });

  test('BandTracks pages with first and after', async () => {
    const first = await client.query({ query: BandTracksDocument, variables: { bandId: seed.bandId, first: 1 } });
    const page1 = first.data!.band.tracks;
    expect(page1.totalCount).toBeGreaterThanOrEqual(2);
    expect(page1.nodes).toHaveLength(1);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    expect(page1.pageInfo.endCursor).toBeTruthy();
    const second = await client.query({
      query: BandTracksDocument,
      variables: { bandId: seed.bandId, first: 1, after: page1.pageInfo.endCursor },
    });
    const page2 = second.data!.band.tracks;
    expect(page2.nodes).toHaveLength(1);
    expect(page2.nodes[0].id).not.toBe(page1.nodes[0].id);
    // Ordered by title: "groove" first, then "late idea" (once a test added it) or "new song".
    expect(page1.nodes[0].title).toBe('groove');
    expect(page2.nodes[0].title.localeCompare(page1.nodes[0].title)).toBe(1);
    expect(page1.nodes[0]).toMatchObject({ bpm: expect.any(Number), key: 'A minor' });
  });

  test('Track shows its takes', async () => {
    const groove = seed.trackIds[0];
    const { data } = await client.query({ query: TrackDocument, variables: { id: groove } });
    const track = nodeAs(data?.node, 'Track', 'title');
    expect(track.title).toBe('groove');
    expect(track.band.id).toBe(seed.bandId);
    expect(track.versions.totalCount).toBe(2);
    expect(track.versions.nodes.map((v) => v.status)).toEqual(['READY', 'READY']);
    expect(track.sessions.map((s) => s.date)).toEqual(['2023-10-15']);
  });

  test('VersionPage has streams, waveform and analysis', async () => {
    const { data } = await client.query({
      query: VersionPageDocument,
      variables: { id: seed.versionIds[0], commentsFirst: 10, samplesPerPixel: 1024 },
    });
    const version = nodeAs(data?.node, 'TrackVersion', 'streams');
    expect(version.status).toBe('READY');
    expect(version.durationMs).toBeGreaterThan(4000);
    expect(version.streams?.original).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    expect(version.streams?.hls).toContain('.m3u8');
    expect(version.streams?.mp3).toBeTruthy();
    expect(version.waveform?.samplesPerPixel).toBe(1024);
    expect(version.waveform?.data.length).toBeGreaterThan(0);
    expect(version.waveform?.data.length).toBe(2 * version.waveform!.length * version.waveform!.channels);
    expect(version.analysis?.bpm).toBeCloseTo(120, -1);
    expect(version.analysis).toMatchObject({ key: 'A', scale: 'minor' });
  });

  test('AddComment, a reply, EditComment, ResolveComment, React and Unreact', async () => {
    const versionId = seed.versionIds[0];
    const added = await client.mutate({
      mutation: AddCommentDocument,
      variables: { input: { versionId, body: 'the fill at 0:01 (apollo)', atMs: 1000, endMs: 2500 } },
    });
    const comment = added.data!.addComment;
    expect(comment).toMatchObject({ atMs: 1000, endMs: 2500, resolved: false, version: { id: versionId }, parent: null });
    expect(comment.author.handle).toBe(seed.handle);

    const reply = await client.mutate({
      mutation: AddCommentDocument,
      variables: { input: { versionId, body: 'agreed', parentId: comment.id } },
    });
    expect(reply.data!.addComment.parent?.id).toBe(comment.id);

    const edited = await client.mutate({
      mutation: EditCommentDocument,
      variables: { id: comment.id, body: 'the fill at 0:01, too busy (apollo)' },
    });
    expect(edited.data!.editComment).toMatchObject({ body: 'the fill at 0:01, too busy (apollo)' });
    expect(edited.data!.editComment.editedAt).toBeTruthy();

    const resolved = await client.mutate({ mutation: ResolveCommentDocument, variables: { id: comment.id, resolved: true } });
    expect(resolved.data!.resolveComment).toMatchObject({ id: comment.id, resolved: true });

    const reacted = await client.mutate({ mutation: ReactDocument, variables: { targetId: comment.id, kind: 'FIRE' } });
    expect(reacted.data!.react.counts).toContainEqual(
      expect.objectContaining({ kind: 'FIRE', count: 1, viewerReacted: true }),
    );
    const unreacted = await client.mutate({ mutation: UnreactDocument, variables: { targetId: comment.id, kind: 'FIRE' } });
    expect(unreacted.data!.unreact.total).toBe(0);

    // The take's page shows the thread.
    const { data } = await client.query({
      query: VersionPageDocument,
      variables: { id: versionId, commentsFirst: 50 },
      fetchPolicy: 'network-only',
    });
    const thread = nodeAs(data?.node, 'TrackVersion', 'comments').comments.nodes.find((c) => c.id === comment.id);
    expect(thread).toMatchObject({ resolved: true, body: 'the fill at 0:01, too busy (apollo)' });
    expect(thread?.replies.nodes.map((r) => r.body)).toEqual(['agreed']);
  });

  test('BandSessions lists the rehearsal days, newest first', async () => {
    const { data } = await client.query({ query: BandSessionsDocument, variables: { bandId: seed.bandId } });
    const sessions = data!.band.sessions;
    const dates = sessions.nodes.map((s) => s.date);
    expect(dates).toContain('2023-10-15');
    expect(dates).toContain('2023-10-22');
    expect(dates.indexOf('2023-10-22')).toBeLessThan(dates.indexOf('2023-10-15'));
    expect(sessions.nodes.find((s) => s.date === '2023-10-15')).toMatchObject({ trackCount: 1, versionCount: 2 });
  });

  test('BandSources shows the scanned folder', async () => {
    const { data } = await client.query({ query: BandSourcesDocument, variables: { bandId: seed.bandId } });
    const source = data!.band.sources.find((s) => s.id === seed.sourceId);
    expect(source).toMatchObject({ kind: 'LOCAL_FOLDER', root: seed.libraryDir });
    expect(source?.lastScan).toMatchObject({ kind: 'SCAN', status: 'SUCCEEDED' });
  });
});

describe('Apollo Client with PersistedQueryLink, an operation the server does not know', () => {
  test('PersistedQueryNotFound, then the link sends the query once and it runs', async () => {
    // A fresh text each run: the server keeps registered documents in its database.
    const nonce = `adhoc${Date.now()}`;
    const query = gql(`query AdHoc { viewer { handle ${nonce}: id } }`);
    const recorded = apolloClient(seed.accessToken);
    const { data } = await recorded.client.query({ query });
    expect(data).toMatchObject({ viewer: { handle: seed.handle } });

    const [byHash, withQuery, ...rest] = recorded.requests;
    expect(rest).toEqual([]);
    const hash = byHash.body.extensions?.persistedQuery?.sha256Hash;
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hash! in loadManifest()).toBe(false);
    expect(byHash.body.query).toBeUndefined();
    expect(errorCodes(byHash.response)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    expect(byHash.response.errors?.[0].message).toBe('PersistedQueryNotFound');

    expect(typeof withQuery.body.query).toBe('string');
    expect(sha256(withQuery.body.query as string)).toBe(hash);
    expect(withQuery.body.extensions?.persistedQuery?.sha256Hash).toBe(hash);
    expect(withQuery.response.errors).toBeUndefined();

    // Registered now: a second client sends only the hash, and it runs.
    const again = apolloClient(seed.accessToken);
    await again.client.query({ query });
    expect(again.requests).toHaveLength(1);
    expect(again.requests[0].body.query).toBeUndefined();
    expect(again.requests[0].response.errors).toBeUndefined();
  });
});
