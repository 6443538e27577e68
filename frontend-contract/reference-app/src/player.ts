// Plays a take's HLS rendition (fMP4/CMAF Opus) through hls.js where Media Source
// Extensions exist, else natively (Safari); the MP3 fallback when there is no HLS yet.
import Hls, { type ErrorData } from 'hls.js';

export type Playback = {
  engine: 'hls.js' | 'native-hls' | 'mp3' | 'original';
  src: string;
  /** hls.js only: attached to the <audio>, its manifest parsed, fragments loaded. */
  attached: boolean;
  manifestParsed: boolean;
  fragmentsLoaded: number;
  audioCodec?: string;
  errors: string[];
};

export type Streams = { hls?: string | null; mp3?: string | null; original: string };

export class Player {
  private hls: Hls | null = null;
  state: Playback | null = null;

  constructor(
    private readonly audio: HTMLAudioElement,
    private readonly onFatal: (message: string) => void,
  ) {}

  load(streams: Streams): Playback {
    this.stop();
    const audio = this.audio;
    if (streams.hls && Hls.isSupported()) {
      const state: Playback = {
        engine: 'hls.js',
        src: streams.hls,
        attached: false,
        manifestParsed: false,
        fragmentsLoaded: 0,
        errors: [],
      };
      const hls = new Hls({ enableWorker: true, lowLatencyMode: false });
      hls.on(Hls.Events.MEDIA_ATTACHED, () => {
        state.attached = true;
        hls.loadSource(state.src);
      });
      hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
        state.manifestParsed = true;
        state.audioCodec = data.levels[0]?.audioCodec;
      });
      hls.on(Hls.Events.BUFFER_CODECS, (_event, data) => {
        state.audioCodec = data.audio?.codec ?? data.audiovideo?.codec ?? state.audioCodec;
      });
      hls.on(Hls.Events.FRAG_LOADED, () => {
        state.fragmentsLoaded++;
      });
      hls.on(Hls.Events.ERROR, (_event, data: ErrorData) => {
        const message = `hls.js ${data.fatal ? 'fatal ' : ''}${data.type}/${data.details}${
          data.error ? `: ${data.error.message}` : ''
        }`;
        state.errors.push(message);
        if (data.fatal) {
          console.error(message, data.response ?? '');
          this.onFatal(message);
        } else {
          // Recovered by hls.js itself (e.g. a buffer stall while seeking): worth a note.
          console.warn(message);
        }
      });
      hls.attachMedia(audio);
      this.hls = hls;
      this.state = state;
    } else if (streams.hls && audio.canPlayType('application/vnd.apple.mpegurl')) {
      audio.src = streams.hls;
      this.state = this.plain('native-hls', streams.hls);
    } else if (streams.mp3) {
      audio.src = streams.mp3;
      this.state = this.plain('mp3', streams.mp3);
    } else {
      audio.src = streams.original;
      this.state = this.plain('original', streams.original);
    }
    audio.dataset.engine = this.state.engine;
    return this.state;
  }

  play(): Promise<void> {
    return this.audio.play();
  }

  stop(): void {
    this.hls?.destroy();
    this.hls = null;
    this.state = null;
    this.audio.pause();
    this.audio.removeAttribute('src');
    delete this.audio.dataset.engine;
  }

  private plain(engine: Playback['engine'], src: string): Playback {
    return { engine, src, attached: false, manifestParsed: false, fragmentsLoaded: 0, errors: [] };
  }
}
