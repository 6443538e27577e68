// The contract tests: real JavaScript GraphQL clients against a real, seeded Backline
// (tests/contract/seeded_backline.py starts it and names it in BACKLINE_CONTRACT_SEED).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'node',
    include: ['tests/**/*.test.ts'],
    // Every file talks to the same server and band: one adds a take and scans, the
    // others count tracks and comment on takes. One file at a time keeps each file's
    // view of the band its own (and their order does not matter).
    fileParallelism: false,
    sequence: { concurrent: false },
    // A scan with its media work takes a few seconds on a loopback server; a hang is
    // caught well before tests/contract/test_js_clients.py's own bound.
    testTimeout: 30_000,
    hookTimeout: 15_000,
  },
});
