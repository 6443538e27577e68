// The reference page (reference-app/) in a real browser: headless Chromium, driven by
// playwright-core, against a real, seeded Backline (tests/contract/seeded_backline.py
// writes the seed; BACKLINE_CONTRACT_SEED names it). The page is built with Vite and
// served by `vite preview`, which proxies /graphql (HTTP + websockets) and /media to
// Backline, so everything the browser does is same-origin, as behind a real reverse proxy.
//
// It proves: sign-in and the band's tracks over persisted queries (hashes only); a scan's
// progress streaming over graphql-ws to 100 %; the HLS rendition (fMP4/CMAF Opus) playing
// through hls.js and Media Source Extensions; the waveform JSON drawn as it says. The
// screenshot (artifacts/reference-app.png) is kept by CI.
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { WaveformJson } from '../reference-app/src/waveform';
import { loadSeed, type Seed } from '../tests/seed';

const here = path.dirname(fileURLToPath(import.meta.url));
const contractDir = path.resolve(here, '..');
const configFile = path.join(contractDir, 'reference-app', 'vite.config.ts');
const manifestFile = path.join(contractDir, 'persisted-documents.json');
const screenshotFile = path.join(contractDir, 'artifacts', 'reference-app.png');

// Without the networking flags Chromium keeps calling home (updates, sync, QUIC probes)
// on a machine whose only network is loopback: slow starts and noise in the logs.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // The test clicks Play (a user gesture), so this is belt and braces for slow machines
  // where the click and the media becoming ready race.
  '--autoplay-policy=no-user-gesture-required',
];

// expect.poll waits 1 s by default: too short for a loaded CI machine.
const POLL = { timeout: 15_000, interval: 100 };

// Console errors the page may log without anything being wrong, each with its reason.
// Empty today: every error seen so far was a real problem. Add entries only with a why.
const BENIGN_CONSOLE: { pattern: RegExp; why: string }[] = [];

type Job = {
  id: string;
  status: string;
  progress: number;
  added: number;
  updated: number;
  failed: number;
  processed: number;
};

type PersistedBody = {
  operationName?: string;
  query?: string;
  extensions?: { persistedQuery?: { version: number; sha256Hash: string } };
};

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

let seed: Seed;
let outDir: string;
let server: PreviewServer | undefined;
let browser: Browser | undefined;
let page: Page;
let baseUrl: string;
let screenshotTaken = false;
const problems: string[] = [];
const httpOperations: PersistedBody[] = [];
const wsSubscribes: PersistedBody[] = [];
const wsNext: { id: string; payload: { data?: { jobProgress?: Job } } }[] = [];
const mediaResponses: { path: string; status: number; type: string }[] = [];

beforeAll(async () => {
  seed = loadSeed();
  // vite.config.ts proxies to BACKLINE_URL, read when the config is loaded.
  process.env.BACKLINE_URL = seed.url;
  outDir = await mkdtemp(path.join(tmpdir(), 'backline-reference-app-'));
  await build({ configFile, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  server = await preview({
    configFile,
    logLevel: 'warn',
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: true, open: false },
  });
  const address = server.httpServer.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${address.port}/`;

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.setDefaultTimeout(30_000);

  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    if (BENIGN_CONSOLE.some(({ pattern }) => pattern.test(text))) return;
    problems.push(`console error: ${text}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.stack ?? error.message}`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} ${response.url()}`);
    const url = new URL(response.url());
    if (url.origin === new URL(baseUrl).origin && url.pathname.startsWith('/media/')) {
      const type = response.headers()['content-type'] ?? '';
      mediaResponses.push({ path: url.pathname, status: response.status(), type });
    }
  });
  page.on('requestfailed', (request) => {
    problems.push(`request failed: ${request.url()} (${request.failure()?.errorText})`);
  });
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/graphql' && request.method() === 'POST') {
      httpOperations.push(JSON.parse(request.postData() ?? '{}') as PersistedBody);
    }
  });
  page.on('websocket', (socket) => {
    if (new URL(socket.url()).pathname !== '/graphql') return;
    socket.on('framesent', ({ payload }) => {
      const message = JSON.parse(String(payload));
      if (message.type === 'subscribe') wsSubscribes.push(message.payload as PersistedBody);
    });
    socket.on('framereceived', ({ payload }) => {
      const message = JSON.parse(String(payload));
      if (message.type === 'next') wsNext.push(message);
      if (message.type === 'error') problems.push(`subscription error: ${String(payload)}`);
    });
  });
});

afterEach(() => {
  // Whatever step logged them, errors on the page fail that step.
  const found = problems.splice(0);
  expect(found, 'errors in the page').toEqual([]);
});

afterAll(async () => {
  try {
    // A failed run still leaves a picture of where the page got to.
    if (page && !screenshotTaken) await screenshot();
  } finally {
    await browser?.close();
    await server?.close();
    if (outDir) await rm(outDir, { recursive: true, force: true });
  }
});

async function screenshot(): Promise<void> {
  await mkdir(path.dirname(screenshotFile), { recursive: true });
  await page.screenshot({ path: screenshotFile, fullPage: true });
  screenshotTaken = true;
}

const trackIdsOnPage = () =>
  page.$$eval('[data-testid="track-item"]', (items) =>
    items.map((item) => (item as HTMLElement).dataset.trackId ?? ''),
  );

describe('the reference page in headless Chromium', () => {
  it("signs in and lists the band's tracks", async () => {
    await page.goto(baseUrl);
    const form = page.getByTestId('login-form');
    await form.getByTestId('login-email').fill(seed.email);
    await form.getByTestId('login-password').fill(seed.password);
    await form.getByTestId('login-submit').click();

    await page.getByTestId('track-item').first().waitFor();
    const status = () => page.getByTestId('status').textContent();
    await expect.poll(status, POLL).toMatch(/^Signed in as /);
    expect(await page.getByTestId('band-name').getAttribute('data-band-id')).toBe(seed.bandId);
    const ids = await trackIdsOnPage();
    expect(ids).toEqual(expect.arrayContaining(seed.trackIds));
    await expect(page.getByTestId('login-form').isHidden()).resolves.toBe(true);
  });

  it('scans the source and shows its progress live to 100 %', async () => {
    const scan = page.getByTestId('scan-button');
    expect(await scan.getAttribute('data-source-id')).toBe(seed.sourceId);
    // A late take lands in the source: this scan has something to add (unless another
    // test of the same server already copied it in).
    const isNew = !(await exists(seed.stagingTarget));
    await mkdir(path.dirname(seed.stagingTarget), { recursive: true });
    await copyFile(seed.stagingFile, seed.stagingTarget);
    const tracksBefore = (await trackIdsOnPage()).length;

    await scan.click();
    const progress = page.getByTestId('scan-progress');
    await page.waitForSelector('[data-testid="scan-progress"][data-complete="true"]', {
      timeout: 60_000,
    });
    expect(await progress.getAttribute('aria-valuenow')).toBe('100');
    expect(await progress.getAttribute('data-status')).toBe('SUCCEEDED');
    const jobId = await progress.getAttribute('data-job-id');

    // The bar was driven by jobProgress over the websocket, not by polling.
    const subscribed = wsSubscribes.map((body) => body.operationName);
    expect(subscribed).toContain('JobProgress');
    const frames = wsNext.map((m) => m.payload.data?.jobProgress).filter((j) => j?.id === jobId);
    expect(frames.length).toBeGreaterThan(0);
    const last = frames.at(-1) as Job;
    expect(last).toMatchObject({ status: 'SUCCEEDED', progress: 1, failed: 0 });
    if (isNew) {
      expect(last.added).toBeGreaterThanOrEqual(1);
      // The page lists the tracks again once the job ends: the late take's track is new.
      await expect
        .poll(async () => (await trackIdsOnPage()).length, POLL)
        .toBeGreaterThan(tracksBefore);
    }
  });

  it('plays the HLS rendition through hls.js', async () => {
    const trackId = seed.trackIds[0];
    await page.locator(`[data-testid="track-item"][data-track-id="${trackId}"] button`).click();
    await page.waitForSelector('[data-testid="waveform"][data-length]');
    await expect.poll(() => page.getByTestId('status').textContent(), POLL).toMatch(/^Ready: /);

    await page.getByTestId('play-button').click();
    await page.waitForFunction(
      () => (document.querySelector('[data-testid="audio"]') as HTMLAudioElement).currentTime > 0.5,
      undefined,
      { timeout: 30_000 },
    );
    const state = await page.evaluate(() => {
      const audio = document.querySelector('[data-testid="audio"]') as HTMLAudioElement;
      type Debug = { backline: { playback: () => Record<string, unknown> | null } };
      return {
        playback: (window as unknown as Debug).backline.playback(),
        currentSrc: audio.currentSrc,
        paused: audio.paused,
        error: audio.error?.message ?? null,
        currentTime: audio.currentTime,
        mseOpus: MediaSource.isTypeSupported('audio/mp4; codecs="opus"'),
        playheadX: Number(
          document.querySelector<HTMLCanvasElement>('[data-testid="waveform"]')?.dataset.playheadX,
        ),
      };
    });
    expect(state.mseOpus, 'Chromium plays Opus in fMP4 through MSE').toBe(true);
    expect(state.playback).toMatchObject({
      engine: 'hls.js',
      attached: true,
      manifestParsed: true,
      errors: [],
    });
    expect(state.playback?.fragmentsLoaded).toBeGreaterThan(0);
    expect(String(state.playback?.audioCodec)).toMatch(/opus/i);
    // hls.js feeds the element from a MediaSource: its source is a blob: URL.
    expect(state.currentSrc).toMatch(/^blob:/);
    // The signed links point back through the page's origin (the Host Backline saw).
    expect(new URL(String(state.playback?.src)).origin).toBe(new URL(baseUrl).origin);
    expect(state).toMatchObject({ paused: false, error: null });
    // The playlist, its init segment and media segments came through the proxy, typed.
    const hlsResponses = mediaResponses.filter((r) => r.path.includes('/hls/'));
    const typeOf = (suffix: string) => hlsResponses.find((r) => r.path.endsWith(suffix));
    expect(typeOf('.m3u8')).toMatchObject({ status: 200, type: 'application/vnd.apple.mpegurl' });
    expect(typeOf('.mp4')).toMatchObject({ type: 'audio/mp4' });
    expect(typeOf('.m4s')).toMatchObject({ type: 'audio/mp4' });
    expect(state.currentTime).toBeGreaterThan(0.5);
    expect(state.playheadX).toBeGreaterThan(0);
  });

  it('draws the waveform the JSON describes, with a playhead', async () => {
    const drawn = await page.evaluate(() => {
      type Debug = { backline: { version: { waveform: { url: string; length: number } } } };
      const canvas = document.querySelector('[data-testid="waveform"]') as HTMLCanvasElement;
      const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
      const { width, height } = canvas;
      const pixels = ctx.getImageData(0, 0, width, height).data;
      // Per column: the topmost and bottommost waveform pixel (blue; the playhead is red).
      const top: number[] = [];
      const bottom: number[] = [];
      let painted = 0;
      for (let x = 0; x < width; x++) {
        let first = -1;
        let lastRow = -1;
        for (let y = 0; y < height; y++) {
          const i = (y * width + x) * 4;
          const [r, b] = [pixels[i], pixels[i + 2]];
          if (b > 200 && r < 100) {
            painted++;
            if (first < 0) first = y;
            lastRow = y;
          }
        }
        top.push(first);
        bottom.push(lastRow);
      }
      const version = (window as unknown as Debug).backline.version;
      return {
        width,
        height,
        painted,
        top,
        bottom,
        dataset: { ...canvas.dataset },
        url: version.waveform.url,
        graphqlLength: version.waveform.length,
      };
    });

    // The same JSON the page fetched, fetched again here through the page's origin.
    const response = await fetch(new URL(drawn.url, baseUrl));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const json = (await response.json()) as WaveformJson;
    expect(json.version).toBe(2);
    expect(json.data.length).toBe(json.length * 2 * json.channels);
    expect(json.length).toBe(drawn.graphqlLength);
    expect(drawn.dataset).toMatchObject({
      length: String(json.length),
      points: String(json.length),
      channels: String(json.channels),
      samplesPerPixel: String(json.samples_per_pixel),
      columns: String(drawn.width),
    });
    // Not blank: a good part of the canvas is waveform.
    expect(drawn.painted).toBeGreaterThan(drawn.width * 4);

    // Each column's extent is the JSON's peaks over the pixels that column covers
    // (as reference-app/src/waveform.ts scales them), to within a pixel: the drawing is
    // the file's, not any shape.
    const full = json.bits === 8 ? 128 : 32768;
    const mid = drawn.height / 2;
    const playheadX = Number(drawn.dataset.playheadX);
    let compared = 0;
    for (let x = 0; x < drawn.width; x += 7) {
      if (Math.abs(x - playheadX) <= 2 || drawn.top[x] < 0) continue;
      const from = Math.floor((x * json.length) / drawn.width);
      const to = Math.max(from + 1, Math.floor(((x + 1) * json.length) / drawn.width));
      let min = 0;
      let max = 0;
      for (let i = from; i < to && i < json.length; i++) {
        for (let c = 0; c < json.channels; c++) {
          min = Math.min(min, json.data[(i * json.channels + c) * 2]);
          max = Math.max(max, json.data[(i * json.channels + c) * 2 + 1]);
        }
      }
      // The rows painted: from round(top) to round(bottom) - 1 (at least one).
      const expectedTop = Math.round(mid - (max / full) * mid);
      const expectedBottom = Math.max(expectedTop, Math.round(mid - (min / full) * mid) - 1);
      expect(Math.abs(drawn.top[x] - expectedTop), `column ${x} top`).toBeLessThanOrEqual(1);
      const bottomOff = Math.abs(drawn.bottom[x] - expectedBottom);
      expect(bottomOff, `column ${x} bottom`).toBeLessThanOrEqual(1);
      compared++;
    }
    expect(compared).toBeGreaterThan(drawn.width / 10);
    expect(playheadX).toBeGreaterThan(0);
  });

  it('sent every operation as a trusted persisted hash, never as text', async () => {
    const trusted = new Set(
      Object.keys(JSON.parse(await readFile(manifestFile, 'utf-8')) as Record<string, string>),
    );
    const bodies = [...httpOperations, ...wsSubscribes];
    expect(bodies.map((b) => b.operationName)).toEqual(
      expect.arrayContaining([
        'Login',
        'Viewer',
        'BandSources',
        'BandTracks',
        'ScanSource',
        'JobProgress',
        'VersionPage',
      ]),
    );
    for (const body of bodies) {
      expect(body.query, `${body.operationName} sent its text`).toBeUndefined();
      const hash = body.extensions?.persistedQuery?.sha256Hash ?? '';
      expect(body.extensions?.persistedQuery?.version).toBe(1);
      expect(trusted.has(hash), `${body.operationName}'s hash ${hash} is trusted`).toBe(true);
    }
  });

  it('takes the screenshot CI keeps', async () => {
    // The playhead part-way through, the bar full, the tracks listed.
    await page.getByTestId('audio').evaluate((audio) => (audio as HTMLAudioElement).pause());
    // Let the paused state paint (the player's controls, the playhead's last frame).
    await page.waitForTimeout(300);
    await screenshot();
    expect((await stat(screenshotFile)).size).toBeGreaterThan(10_000);
  });
});
