import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { defineConfig } from 'vite'

// The build lands in internal/ui/dist, which Go embeds. That directory keeps a
// committed .keep so that `go build` works before the UI is built; Vite empties
// the directory first, so the plugin below puts .keep back.
const outDir = resolve(import.meta.dirname, '../internal/ui/dist')

export default defineConfig({
  build: {
    outDir,
    emptyOutDir: true,
    // The server's Content-Security-Policy forbids inline scripts; modern
    // browsers need no modulepreload polyfill.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 300,
    sourcemap: false,
  },
  plugins: [
    {
      name: 'vigil-keep-dist',
      closeBundle() {
        writeFileSync(resolve(outDir, '.keep'), '')
      },
    },
  ],
  server: {
    // `npm run dev` proxies the APIs to a vigil server on the default port.
    proxy: { '/api': 'http://localhost:7070' },
  },
})
