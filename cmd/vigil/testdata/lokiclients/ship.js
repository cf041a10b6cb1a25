// Ships lines into vigil's Loki push API with the Node Loki clients, as an
// application using them would, then exits: 0 once every client reports
// its lines sent, 1 on any error. Run by TestLokiNodeClients (cmd/vigil).
//
//   VIGIL_URL  vigil's web address (http://127.0.0.1:port)
//   RUN_ID     tags every line and stream, so that the test finds them
//   LINES      lines per client
//   TRACE_ID   the trace id every line carries
'use strict'

const winston = require('winston')
const LokiTransport = require('winston-loki')
const pino = require('pino')
const { pinoLoki } = require('pino-loki')

const url = process.env.VIGIL_URL
const run = process.env.RUN_ID
const lines = Number(process.env.LINES || 10)
const traceId = process.env.TRACE_ID

const errors = []

// winston-loki sends snappy-compressed protobuf unless json is set. The
// json format makes each line a JSON object, from which vigil lifts the
// trace id.
async function shipWinston (json) {
  const client = json ? 'winston-json' : 'winston-protobuf'
  const transport = new LokiTransport({
    host: url,
    json,
    labels: { service_name: client, run },
    headers: { 'X-Scope-OrgID': 'team-node' },
    format: winston.format.json(),
    interval: 0.2,
    gracefulShutdown: false,
    onConnectionError: (err) => errors.push(`${client}: ${err.message}`)
  })
  const logger = winston.createLogger({ transports: [transport] })
  for (let i = 0; i < lines; i++) {
    logger.info(`${client} line ${i}`, { trace_id: traceId, i })
  }
  await transport.flush()
  await transport.close()
}

// pino-loki sends JSON; the trace id goes as structured metadata (its
// "meta" key), the other path vigil lifts it from.
async function shipPino () {
  const stream = pinoLoki({
    host: url,
    labels: { service_name: 'pino', run },
    headers: { 'X-Scope-OrgID': 'team-node' },
    batching: { interval: 0.2 }
  })
  const done = new Promise((resolve) => stream.on('close', resolve))
  const logger = pino({ base: { hostname: 'node-host' } }, stream)
  for (let i = 0; i < lines; i++) {
    logger.warn({ meta: { trace_id: traceId }, i }, `pino line ${i}`)
  }
  stream.end()
  await done
}

async function main () {
  const origError = console.error
  // Both clients report failed pushes on the console only.
  console.error = (...args) => { errors.push(args.map(String).join(' ')); origError(...args) }
  await Promise.all([shipWinston(false), shipWinston(true), shipPino()])
  if (errors.length > 0) {
    origError('errors:', errors)
    process.exit(1)
  }
  console.log(JSON.stringify({ sent: 3 * lines }))
}

main().catch((err) => { console.error(err); process.exit(1) })
