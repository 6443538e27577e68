// Backline's reference page: sign in, the first band's tracks, a live scan, and a take
// playing with its waveform. Plain DOM and the generated typed documents (../src/gql).
import {
  BandSourcesDocument,
  BandTracksDocument,
  JobProgressDocument,
  LoginDocument,
  ScanSourceDocument,
  VersionPageDocument,
  ViewerDocument,
  type BandTracksQuery,
  type JobFieldsFragment,
  type VersionPageQuery,
} from '../../src/gql/graphql.js';
import { Api } from './api';
import { Player, type Playback } from './player';
import { fetchWaveform, WaveformView, type WaveformJson } from './waveform';

type Track = BandTracksQuery['band']['tracks']['nodes'][number];
type VersionNode = NonNullable<VersionPageQuery['node']>;
type Version = Extract<VersionNode, { streams?: unknown }>;

const $ = <T extends HTMLElement>(id: string) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  return element as T;
};

const ui = {
  status: $('status'),
  who: $('who'),
  login: $<HTMLFormElement>('login'),
  app: $('app'),
  bandName: $('band-name'),
  scan: $<HTMLButtonElement>('scan'),
  progress: $('scan-progress'),
  scanStatus: $('scan-status'),
  trackCount: $('track-count'),
  tracks: $<HTMLUListElement>('tracks'),
  version: $('version'),
  versionTitle: $('version-title'),
  versionMeta: $('version-meta'),
  play: $<HTMLButtonElement>('play'),
  audio: $<HTMLAudioElement>('audio'),
  time: $('time'),
  canvas: $<HTMLCanvasElement>('waveform'),
};

const api = new Api('/graphql');
const player = new Player(ui.audio, (message) => setStatus(message, 'error'));
const waveform = new WaveformView(ui.canvas);
let bandId: string | null = null;
let sourceId: string | null = null;
let stopScan: (() => void) | null = null;

// What the page is showing, for the browser test (read with page.evaluate) and devtools.
const debug: {
  version: Version | null;
  waveform: WaveformJson | null;
  playback: () => Playback | null;
  jobs: JobFieldsFragment[];
} = { version: null, waveform: null, playback: () => player.state, jobs: [] };
(window as unknown as { backline: typeof debug }).backline = debug;

function setStatus(text: string, kind: 'info' | 'error' = 'info'): void {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
}

function fail(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  console.error(message);
  setStatus(message, 'error');
}

ui.login.addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(ui.login);
  signIn(String(form.get('email')), String(form.get('password'))).catch(fail);
});

async function signIn(email: string, password: string): Promise<void> {
  setStatus('Signing in…');
  const { login } = await api.request(LoginDocument, { input: { email, password } });
  api.useToken(login.accessToken);
  const { viewer } = await api.request(ViewerDocument, { bandsFirst: 10 });
  if (!viewer) throw new Error('Signed in, but the viewer is null.');
  ui.who.textContent = `${viewer.displayName ?? viewer.handle} <${viewer.email ?? ''}>`;
  ui.login.hidden = true;
  ui.app.hidden = false;
  const band = viewer.bands.nodes[0];
  if (!band) {
    setStatus('Signed in; you are in no band yet.');
    return;
  }
  bandId = band.id;
  ui.bandName.textContent = band.name;
  ui.bandName.dataset.bandId = band.id;
  ui.bandName.dataset.slug = band.slug;
  const [sources] = await Promise.all([
    api.request(BandSourcesDocument, { bandId: band.id }),
    loadTracks(),
  ]);
  const source = sources.band.sources[0];
  sourceId = source?.id ?? null;
  ui.scan.disabled = sourceId === null;
  if (source) {
    ui.scan.dataset.sourceId = source.id;
    ui.scan.title = `Scan ${source.name} (${source.root})`;
    if (source.lastScan) showJob(source.lastScan);
  }
  setStatus(`Signed in as ${viewer.handle}.`);
}

async function loadTracks(): Promise<void> {
  if (!bandId) return;
  const { band } = await api.request(BandTracksDocument, { bandId, first: 50, orderBy: 'TITLE' });
  ui.trackCount.textContent = `(${band.tracks.totalCount})`;
  ui.tracks.replaceChildren(...band.tracks.nodes.map(trackItem));
  ui.tracks.dataset.count = String(band.tracks.nodes.length);
}

function trackItem(track: Track): HTMLLIElement {
  const item = document.createElement('li');
  item.dataset.testid = 'track-item';
  item.dataset.trackId = track.id;
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = track.title;
  const latest = track.latestVersion;
  button.disabled = !latest;
  button.addEventListener('click', () => {
    if (latest) openVersion(latest.id, item).catch(fail);
  });
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = latest
    ? `${latest.label} · ${latest.status.toLowerCase()} · ${seconds(latest.durationMs)}`
    : 'no takes yet';
  item.append(button, meta);
  return item;
}

// Scan: the mutation answers with the job at once; jobProgress streams it until it ends.
ui.scan.addEventListener('click', () => {
  if (!sourceId) return;
  ui.scan.disabled = true;
  api
    .request(ScanSourceDocument, { sourceId })
    .then(({ scanSource }) => {
      showJob(scanSource);
      stopScan?.();
      stopScan = api.subscribe(
        JobProgressDocument,
        { jobId: scanSource.id },
        {
          next: ({ jobProgress }) => showJob(jobProgress),
          error: (error) => {
            ui.scan.disabled = false;
            fail(error);
          },
          complete: () => {
            ui.scan.disabled = false;
            ui.progress.dataset.complete = 'true';
            loadTracks().catch(fail);
          },
        },
      );
    })
    .catch((error) => {
      ui.scan.disabled = false;
      fail(error);
    });
});

function showJob(job: JobFieldsFragment): void {
  debug.jobs.push(job);
  const percent = Math.round(job.progress * 100);
  ui.progress.setAttribute('aria-valuenow', String(percent));
  ui.progress.dataset.jobId = job.id;
  ui.progress.dataset.status = job.status;
  (ui.progress.firstElementChild as HTMLElement).style.width = `${percent}%`;
  const files = `${job.processed}${job.total != null ? `/${job.total}` : ''} files`;
  const counts = `${files}, ${job.added} added, ${job.updated} updated, ${job.failed} failed`;
  ui.scanStatus.textContent = `${job.status.toLowerCase()} ${percent}% · ${counts}`;
  ui.scanStatus.dataset.status = job.status;
  for (const error of job.errors) console.warn(`scan: ${error.path ?? ''} ${error.message}`);
}

async function openVersion(versionId: string, item: HTMLElement): Promise<void> {
  for (const other of ui.tracks.querySelectorAll('[aria-current]')) {
    other.removeAttribute('aria-current');
  }
  item.setAttribute('aria-current', 'true');
  setStatus('Loading the take…');
  const { node } = await api.request(VersionPageDocument, { id: versionId, commentsFirst: 20 });
  if (!node || !('streams' in node)) throw new Error(`No take ${versionId}.`);
  const version = node as Version;
  debug.version = version;
  ui.version.hidden = false;
  ui.version.dataset.versionId = version.id;
  ui.versionTitle.textContent = `${version.track.title} — ${version.label}`;
  ui.versionMeta.textContent = [
    version.originalFilename,
    version.status.toLowerCase(),
    seconds(version.durationMs),
    version.codec,
    version.analysis?.bpm ? `${version.analysis.bpm.toFixed(0)} bpm` : null,
    version.analysis?.key ? `${version.analysis.key} ${version.analysis.scale ?? ''}` : null,
  ]
    .filter(Boolean)
    .join(' · ');
  if (!version.streams) throw new Error('This take has no streams yet.');
  const playback = player.load(version.streams);
  ui.play.disabled = false;
  if (version.waveform) {
    const json = await fetchWaveform(version.waveform.url);
    debug.waveform = json;
    waveform.show(json);
  }
  setStatus(`Ready: ${version.track.title} (${playback.engine}).`);
}

ui.play.addEventListener('click', () => {
  if (ui.audio.paused) player.play().catch(fail);
  else ui.audio.pause();
});
ui.audio.addEventListener('play', () => (ui.play.textContent = 'Pause'));
ui.audio.addEventListener('pause', () => (ui.play.textContent = 'Play'));
ui.audio.addEventListener('error', () => {
  const error = ui.audio.error;
  if (error) fail(`audio: MediaError ${error.code} ${error.message}`);
});

// The playhead follows currentTime every frame while playing (timeupdate alone is ~4 Hz).
function tick(): void {
  ui.time.textContent = clock(ui.audio.currentTime);
  ui.audio.dataset.currentTime = ui.audio.currentTime.toFixed(2);
  waveform.draw(ui.audio.currentTime);
  if (!ui.audio.paused) requestAnimationFrame(tick);
}
ui.audio.addEventListener('playing', () => requestAnimationFrame(tick));
ui.audio.addEventListener('seeked', tick);
ui.audio.addEventListener('pause', tick);

function seconds(ms: number | null | undefined): string {
  return ms == null ? '–' : clock(ms / 1000);
}

function clock(s: number): string {
  const minutes = Math.floor(s / 60);
  return `${minutes}:${(s - minutes * 60).toFixed(1).padStart(4, '0')}`;
}
