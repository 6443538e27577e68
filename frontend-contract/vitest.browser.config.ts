// The browser test of the reference page (browser/**): headless Chromium through
// playwright-core against a real, seeded Backline (BACKLINE_CONTRACT_SEED), kept apart
// from the API contract tests (vitest.config.ts) so each runs on its own:
//   npx vitest run --config vitest.browser.config.ts
// tests/contract/test_reference_app.py runs it with a seeded server.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'node',
    include: ['browser/**/*.test.ts'],
    // One page, one server, one browser: the steps of a file run in order, files one by one.
    fileParallelism: false,
    sequence: { concurrent: false },
    // Building the page, starting Chromium and playing a few seconds of audio.
    testTimeout: 90_000,
    hookTimeout: 90_000,
    printConsoleTrace: false,
  },
});
