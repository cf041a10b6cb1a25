// Starts `bin/vigil server` on free ports with a temporary data directory and
// `bin/vigil demo` sending to it, waits until the demo's traces, logs and
// metrics are queryable, and stops both afterwards (also when tests fail).
// The server also evaluates a few alert rules and an SLO and runs its
// Alertmanager, for the alerting pages.
import { type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { bin, freePort, freeRange, getJSON, start, stop, until } from './procs'

// Alerts for alerting.spec.ts: one firing at once, one pending for an hour.
// The description is HTML, which the UI must show as text. For doctor.spec.ts,
// a rule named with HTML over a metric that does not exist: the doctor reports
// it (rule_no_series), and its page must show the name as text.
const E2E_RULES = `groups:
  - name: e2e
    rules:
      - alert: E2EAlwaysFiring
        expr: vector(1)
        labels:
          severity: page
          team: e2e
        annotations:
          summary: Always firing, for the browser tests
          description: '<img src=x onerror="window.__xss=3"> <script>window.__xss=4</script>'
      - alert: E2EPending
        expr: vector(1)
        for: 1h
        labels:
          severity: ticket
          team: e2e
        annotations:
          summary: Pending for an hour
      - alert: '<img src=x onerror="window.__xss=5">'
        expr: e2e_doctor_metric_nobody_sends > 0
`

// Every alert goes to a receiver without integrations: nothing is sent out.
const E2E_ALERTMANAGER = `route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
`

// An SLO on the demo's payments service, with a span-based SLI.
const E2E_SLOS = `slos:
  - version: prometheus/v1
    service: payments
    slos:
      - name: charge-errors
        objective: 99.9
        sli: {spans: {operation: "shop.Payments/Charge"}}
        alerting:
          name: PaymentsChargeBudgetBurn
          page_alert: {labels: {severity: critical}}
          ticket_alert: {labels: {severity: warning}}`

export default async function globalSetup() {
  // Against a vigil that is already running (VIGIL_URL, with the demo shop
  // for the specs that expect its services; VIGIL_OTLP_HTTP, default
  // http://localhost:4318, for the spec that sends data), start nothing.
  if (process.env.VIGIL_URL) {
    process.env.VIGIL_OTLP_HTTP ||= 'http://localhost:4318'
    mkdirSync(resolve(import.meta.dirname, 'screenshots'), { recursive: true })
    return
  }
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run make build (make ui-test does)`)
  const [httpPort, grpcPort, otlpHttpPort, demoBase] = [await freePort(), await freePort(), await freePort(), await freeRange(4)]
  const dataDir = mkdtempSync(join(tmpdir(), 'vigil-ui-test-'))
  const url = `http://127.0.0.1:${httpPort}`
  const config = join(dataDir, 'vigil.yaml')
  // Scrape vigil itself and the demo's services, so `up` has series quickly;
  // evaluate rules every second; alert rules and an SLO for the alerting
  // specs (alerting.spec.ts), and vigil's Alertmanager with one receiver.
  writeFileSync(join(dataDir, 'e2e.rules.yml'), E2E_RULES)
  writeFileSync(join(dataDir, 'alertmanager.yml'), E2E_ALERTMANAGER)
  writeFileSync(
    config,
    [
      'rule_files: [e2e.rules.yml]',
      'alertmanager_config_file: alertmanager.yml',
      E2E_SLOS,
      'global:',
      '  scrape_interval: 2s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: vigil',
      `    static_configs: [{targets: ["127.0.0.1:${httpPort}"]}]`,
      '  - job_name: shop',
      `    static_configs: [{targets: [${[0, 1, 2, 3].map((k) => `"127.0.0.1:${demoBase + k}"`).join(', ')}]}]`,
      '',
    ].join('\n'),
  )

  let server: ChildProcess | undefined
  let demo: ChildProcess | undefined
  const teardown = async () => {
    await stop(demo)
    await stop(server)
    rmSync(dataDir, { recursive: true, force: true })
  }
  const killNow = () => {
    demo?.kill('SIGKILL')
    server?.kill('SIGKILL')
  }
  process.once('exit', killNow)

  try {
    server = start('vigil-server', [
      'server',
      '--config', config,
      '--http-addr', `127.0.0.1:${httpPort}`,
      '--otlp-grpc-addr', `127.0.0.1:${grpcPort}`,
      '--otlp-http-addr', `127.0.0.1:${otlpHttpPort}`,
      '--data-dir', join(dataDir, 'data'),
    ])
    await until('vigil server ready', 30_000, async () => (await fetch(`${url}/-/ready`)).ok)
    // The demo's payments read their settings from this server's
    // configuration centre (it seeds shop/payments/settings).
    demo = start('vigil-demo', [
      'demo', '--otlp-endpoint', `127.0.0.1:${grpcPort}`, '--port-base', String(demoBase), '--rps', '20', '--vigil-url', url,
    ])
    // Demo data is queryable: a log linked to a stored trace, and scraped metrics.
    await until('demo logs and traces', 60_000, async () => {
      const logs = await getJSON(`${url}/api/logs?service=gateway&limit=20`)
      const withTrace = (logs?.data ?? []).find((l: { trace_id: string }) => l.trace_id)
      return !!withTrace && (await fetch(`${url}/api/traces/${withTrace.trace_id}`)).ok
    })
    await until('scraped metrics', 30_000, async () => {
      const up = await getJSON(`${url}/api/v1/query?query=up{job="shop"}`)
      return (up?.data?.result ?? []).length >= 4
    })
  } catch (e) {
    await teardown()
    throw e
  }

  process.env.VIGIL_URL = url
  process.env.VIGIL_OTLP_HTTP = `http://127.0.0.1:${otlpHttpPort}`
  mkdirSync(resolve(import.meta.dirname, 'screenshots'), { recursive: true })
  return teardown
}
