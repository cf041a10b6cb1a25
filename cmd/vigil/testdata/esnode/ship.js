// Ships logs into vigil with the official Elasticsearch client, configured
// as for Elasticsearch: the node is vigil's web address. Run by
// cmd/vigil/esagents_test.go, which reads the summary printed on stdout.
'use strict'

const { Client } = require('@elastic/elasticsearch')

async function main () {
  const node = process.env.VIGIL_URL
  const n = Number(process.env.LINES)
  const index = process.env.INDEX
  const client = new Client({ node })

  // The first request makes the client check, on the answer's headers,
  // that it talks to Elasticsearch; a failed check throws here.
  const info = await client.info()

  const now = Date.now()
  const docs = []
  for (let i = 0; i < n; i++) {
    docs.push({
      '@timestamp': new Date(now - i).toISOString(),
      message: `cart ${i} checked out`,
      log: { level: 'info' },
      service: { name: 'cart' },
      host: { name: 'web-03' }
    })
  }
  const dropped = []
  const stats = await client.helpers.bulk({
    datasource: docs,
    onDocument () { return { create: { _index: index } } },
    onDrop (d) { dropped.push(d.error) },
    flushBytes: 4096
  })
  // One more through the single-document API (POST /{index}/_doc).
  const one = await client.index({ index, document: { '@timestamp': new Date(now).toISOString(), message: 'cart single document', service: { name: 'cart' }, host: { name: 'web-03' } } })

  process.stdout.write(JSON.stringify({
    version: info.version.number,
    total: stats.total,
    successful: stats.successful,
    failed: stats.failed,
    dropped,
    single: one.result
  }) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
