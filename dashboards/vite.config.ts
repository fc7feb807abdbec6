import { defineConfig } from 'vite';

// Built to dist/ and served by the api process at / (api/dashboards-route.ts) under a strict CSP:
// no inline script or style, so nothing may be inlined into index.html.
export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
