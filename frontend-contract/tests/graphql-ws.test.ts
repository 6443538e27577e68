// graphql-ws, the reference client of the graphql-transport-ws protocol, against a real
// Backline: a take copied into the band's folder and scanned is followed on jobProgress
// to the end of the scan, and arrives on bandEvents as VersionAdded (then, once its
// media work is done, as VersionUpdated READY).
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { createClient, type Client, type SubscribePayload } from 'graphql-ws';
import { afterAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';

import {
  BandEventsDocument,
  JobProgressDocument,
  ReactDocument,
  ScanSourceDocument,
  UnreactDocument,
  type BandEventsSubscription,
  type JobProgressSubscription,
} from '../src/gql/graphql';
import { loadSeed, postByHash, trustedText } from './seed';

const seed = loadSeed();
const WAIT_MS = 20_000;

type BandEvent = BandEventsSubscription['bandEvents'];
type Of<T extends BandEvent['__typename']> = Extract<BandEvent, { __typename: T }>;
type JobState = JobProgressSubscription['jobProgress'];

/** A graphql-ws client signed in with ``token`` in connection_init, as the browser's
 * would be. A subscribe whose query is '' goes by its persisted hash alone: graphql-ws
 * insists on a string query, so the replacer leaves the empty one out of the message. */
function wsClient(token: string): Client {
  return createClient({
    url: seed.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    jsonMessageReplacer: (key, value) => (key === 'query' && value === '' ? undefined : value),
  });
}

/** The payload of a trusted document sent by hash only (the server looks it up). */
function byHash(document: unknown, variables: Record<string, unknown>): SubscribePayload {
  const { hash } = trustedText(document);
  return { query: '', variables, extensions: { persistedQuery: { version: 1, sha256Hash: hash } } };
}

/** The payload of a trusted document sent in full, with its hash (the manifest's text:
 * the server counts it as trusted because its sha256 is in the manifest). */
function inFull(document: unknown, variables: Record<string, unknown>): SubscribePayload {
  const { hash, text } = trustedText(document);
  return { query: text, variables, extensions: { persistedQuery: { version: 1, sha256Hash: hash } } };
}

/** What a subscription delivered so far, and a way to wait for what is still to come. */
class Received<T> {
  readonly values: T[] = [];
  errors: unknown[] | undefined;
  completed = false;
  private wake: () => void = () => {};

  readonly sink = {
    next: (result: { data?: unknown; errors?: readonly unknown[] }) => {
      if (result.errors) this.errors = [...result.errors];
      if (result.data) this.values.push(result.data as T);
      this.wake();
    },
    error: (error: unknown) => {
      this.errors = Array.isArray(error) ? error : [error];
      this.wake();
    },
    complete: () => {
      this.completed = true;
      this.wake();
    },
  };

  /** Resolves once ``done`` holds (checked after every message); rejects after ``ms``,
   * or when the subscription fails or completes first. */
  async until(what: string, done: () => boolean, ms = WAIT_MS): Promise<void> {
    if (!(await this.within(done, ms))) {
      throw new Error(`${what}: not after ${ms} ms; received ${JSON.stringify(this.values)}`);
    }
  }

  /** Whether ``done`` came to hold within ``ms``. */
  async within(done: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (this.errors) throw new Error(`the subscription answered ${JSON.stringify(this.errors)}`);
      if (this.completed) throw new Error('the subscription completed before the wait was over');
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }
}

/** The protocol has no "subscribed" message: react to a track until the reaction comes
 * back on bandEvents, so the subscription is known to be live before a test relies on
 * it (else a take's VersionAdded could go out before the server had the subscriber). */
async function untilLive(events: Received<{ bandEvents: BandEvent }>): Promise<void> {
  const targetId = seed.trackIds[seed.trackIds.length - 1];
  const echoed = () =>
    events.values.some(({ bandEvents: e }) => e.__typename === 'ReactionChanged' && e.targetId === targetId);
  for (let attempt = 0; attempt < 20; attempt++) {
    await postByHash(ReactDocument, { targetId, kind: 'WOW' }, seed.accessToken);
    const live = await events.within(echoed, 500);
    await postByHash(UnreactDocument, { targetId, kind: 'WOW' }, seed.accessToken);
    if (live) return;
  }
  throw new Error(`bandEvents sent no ReactionChanged in 20 tries: ${JSON.stringify(events.values)}`);
}

/** Where to put the late take: the seed's target, or (when a test run against the same
 * server already put it there) another take of the same track, its bytes a little
 * different, so the scan sees a new file rather than the same one again. */
async function placeLateTake(): Promise<string> {
  const exists = await stat(seed.stagingTarget).then(
    () => true,
    () => false,
  );
  await mkdir(path.dirname(seed.stagingTarget), { recursive: true });
  if (!exists) {
    await copyFile(seed.stagingFile, seed.stagingTarget);
    return seed.stagingTarget;
  }
  // 231029/late_idea.wav -> 231029/late_idea/take-<now>.wav: the folder names the track.
  const target = path.join(seed.stagingTarget.replace(/\.wav$/, ''), `take-${Date.now()}.wav`);
  await mkdir(path.dirname(target), { recursive: true });
  const bytes = await readFile(seed.stagingFile);
  bytes[bytes.length - 2] ^= 0x01; // the last sample, one step off: inaudible, other bytes
  await writeFile(target, bytes);
  return target;
}

describe('graphql-ws: a scan followed live', () => {
  const clients: Client[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
  });

  test('jobProgress follows the scan to the end; bandEvents brings VersionAdded', async () => {
    const client = wsClient(seed.accessToken);
    clients.push(client);

    const events = new Received<{ bandEvents: BandEvent }>();
    client.subscribe(byHash(BandEventsDocument, { bandId: seed.bandId }), events.sink);
    await untilLive(events);

    const file = path.basename(await placeLateTake());
    const { scanSource } = await postByHash(ScanSourceDocument, { sourceId: seed.sourceId }, seed.accessToken);
    expect(scanSource.kind).toBe('SCAN');

    const progress = new Received<{ jobProgress: JobState }>();
    client.subscribe(inFull(JobProgressDocument, { jobId: scanSource.id }), progress.sink);
    await progress.until('jobProgress to complete', () => progress.completed || progress.errors !== undefined);
    expect(progress.errors).toBeUndefined();

    const states = progress.values.map(({ jobProgress }) => jobProgress);
    expect(states.length).toBeGreaterThan(0);
    expect(new Set(states.map((s) => s.id))).toEqual(new Set([scanSource.id]));
    const fractions = states.map((s) => s.progress);
    fractions.forEach((value, i) => {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThanOrEqual(1);
      if (i > 0) expect(value, `progress went back: ${fractions}`).toBeGreaterThanOrEqual(fractions[i - 1]);
    });
    const last = states[states.length - 1];
    expect(last).toMatchObject({ status: 'SUCCEEDED', progress: 1, added: 1, failed: 0 });
    expect(last.finishedAt).toBeTruthy();

    // The new take on bandEvents, as soon as the scan indexed it.
    const added = () =>
      events.values
        .map(({ bandEvents }) => bandEvents)
        .filter((e): e is Of<'VersionAdded'> => e.__typename === 'VersionAdded')
        .find((e) => e.version.originalFilename === file)?.version;
    await events.until(`VersionAdded for ${file}`, () => added() !== undefined);
    const take = added()!;
    expect(take.track.title).toBe('late idea');
    expect(take.session?.date).toBe('2023-10-29');

    // Its media work follows: the take comes as VersionUpdated once it is READY.
    await events.until(`VersionUpdated READY for ${file}`, () =>
      events.values.some(
        ({ bandEvents: e }) => e.__typename === 'VersionUpdated' && e.version.id === take.id && e.version.status === 'READY',
      ),
    );
    expect(events.errors).toBeUndefined();
  });

  test('a persisted-only API token subscribes to trusted documents, and only to them', async () => {
    const client = wsClient(seed.persistedOnlyToken);
    clients.push(client);

    // The newest scan's state: a trusted document (sent in full) runs and completes.
    const { scanSource } = await postByHash(ScanSourceDocument, { sourceId: seed.sourceId }, seed.accessToken);
    const trusted = new Received<{ jobProgress: JobState }>();
    client.subscribe(inFull(JobProgressDocument, { jobId: scanSource.id }), trusted.sink);
    await trusted.until('jobProgress to complete', () => trusted.completed || trusted.errors !== undefined);
    expect(trusted.errors).toBeUndefined();
    expect(trusted.values.at(-1)?.jobProgress.status).toBe('SUCCEEDED');

    // An ad hoc document is refused for this operation alone; the socket stays open.
    const adHoc = new Received<unknown>();
    client.subscribe(
      { query: 'subscription AdHoc($jobId: ID!) { jobProgress(jobId: $jobId) { status } }', variables: { jobId: scanSource.id } },
      adHoc.sink,
    );
    await adHoc.within(() => adHoc.errors !== undefined, WAIT_MS);
    expect(adHoc.values).toEqual([]);
    expect(adHoc.errors).toEqual([
      expect.objectContaining({ extensions: expect.objectContaining({ code: 'PERSISTED_QUERY_REQUIRED' }) }),
    ]);

    const again = new Received<{ jobProgress: JobState }>();
    client.subscribe(byHash(JobProgressDocument, { jobId: scanSource.id }), again.sink);
    await again.until('jobProgress by hash to complete', () => again.completed || again.errors !== undefined);
    expect(again.errors).toBeUndefined();
    expect(again.values.at(-1)?.jobProgress.status).toBe('SUCCEEDED');
  });
});
