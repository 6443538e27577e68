// The reference page. From frontend-contract/:
//   BACKLINE_URL=http://127.0.0.1:8000 npx vite --config reference-app/vite.config.ts
// (the seed's `url`, with `.venv/bin/python -m tests.contract.seeded_backline` running).
// The page talks only to its own origin; this server proxies GraphQL (HTTP and
// websockets) and the signed media links to Backline.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type ProxyOptions } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const backline = process.env.BACKLINE_URL ?? 'http://127.0.0.1:8000';

// changeOrigin stays false: Backline builds its signed media links from the Host header
// it is reached by (backend/app.py, _media_base_url), so with the page's own host they
// point back through this proxy and the page plays and fetches same-origin.
const toBackline: ProxyOptions = { target: backline, changeOrigin: false };

export default defineConfig({
  root: here,
  // Relative asset links: the build can be served from any folder.
  base: './',
  clearScreen: false,
  server: {
    proxy: {
      '/graphql': { ...toBackline, ws: true },
      // MEDIA_PATH in backend/media/signing.py: originals, MP3, HLS, waveform JSON.
      '/media': toBackline,
    },
    // The typed documents live in ../src/gql, outside this root.
    fs: { allow: [path.resolve(here, '..')] },
  },
  // `vite preview` uses server.proxy too (Vite: preview.proxy defaults to it).
  build: {
    outDir: path.join(here, 'dist'),
    emptyOutDir: true,
    // Debian's Chromium and any current browser; keeps top-level await etc. as written.
    target: 'es2022',
    // hls.js is most of the ~620 kB (190 kB gzipped): one chunk is fine for this page.
    chunkSizeWarningLimit: 1000,
  },
});
