// The demo shop's slow path in the Profiles page: a vigil of this spec's
// own (the shared demo must stay healthy for the other specs) receives the
// demo's profiles for a healthy stretch, then for a stretch under
// --fault slow-payments. Payments' CPU flame graph of the slow stretch
// shows scoreFraud, and its diff against the healthy stretch marks
// scoreFraud as grown, the top growth; a link to the diff reproduces it.
import { type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, screenshot, test } from './fixtures'
import { freePort, freeRange, getJSON, start, stop, until } from './procs'

// The slow path's frame, by the end of its qualified name.
const SCORE_FRAUD = '[data-testid=fg-frame][data-name$=".scoreFraud"]'

let url = ''
let dataDir = ''
let server: ChildProcess | undefined
let demo: ChildProcess | undefined
const healthy = { start: 0, end: 0 }
let slowStart = 0
// Ends the current order loop (also when the setup failed half-way).
let stopOrders: (() => Promise<number>) | undefined

// placeOrders posts orders to the demo's gateway one after the other until
// the returned function is called. At the demo's own 5 orders a second a
// healthy charge costs payments so little CPU that its profiles hold a
// sample or two in half a minute; this load gives the healthy stretch a
// baseline worth comparing against, and the slow one the same load.
function placeOrders(gateway: string): () => Promise<number> {
  let done = false
  const loop = (async () => {
    let answered = 0
    while (!done) {
      try {
        const r = await fetch(`${gateway}/orders`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ product_id: 1, quantity: 1, card_number: '4111111111111111' }),
          signal: AbortSignal.timeout(5_000),
        })
        await r.arrayBuffer()
        answered++
      } catch {
        // The demo is still starting.
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    return answered
  })()
  return async () => {
    done = true
    return loop
  }
}

async function startDemo(name: string, grpcPort: number, extra: string[] = []): Promise<string> {
  const base = await freeRange(4)
  demo = start(
    name,
    ['demo', '--otlp-endpoint', `127.0.0.1:${grpcPort}`, '--port-base', String(base), '--rps', '20', '--vigil-url', url, ...extra],
    { VIGIL_CONFIG_CACHE_DIR: join(dataDir, `${name}-config-cache`) },
  )
  return `http://127.0.0.1:${base}`
}

const killNow = () => {
  demo?.kill('SIGKILL')
  server?.kill('SIGKILL')
}

test.beforeAll(async () => {
  // Two stretches of the demo, each until its first profiles (uploaded
  // every 10 s) are in.
  test.setTimeout(180_000)
  process.once('exit', killNow)
  const [httpPort, grpcPort, otlpHttpPort] = [await freePort(), await freePort(), await freePort()]
  dataDir = mkdtempSync(join(tmpdir(), 'vigil-ui-test-slow-payments-'))
  url = `http://127.0.0.1:${httpPort}`
  server = start('vigil-server-slow-payments', [
    'server',
    '--http-addr', `127.0.0.1:${httpPort}`,
    '--otlp-grpc-addr', `127.0.0.1:${grpcPort}`,
    '--otlp-http-addr', `127.0.0.1:${otlpHttpPort}`,
    '--data-dir', join(dataDir, 'data'),
  ])
  await until('vigil server ready', 30_000, async () => (await fetch(`${url}/-/ready`)).ok)

  healthy.start = Date.now()
  stopOrders = placeOrders(await startDemo('vigil-demo-healthy', grpcPort))
  await until('a CPU profile of healthy payments', 60_000, async () => {
    const top = await getJSON(`${url}/api/v1/profiles/top?service=payments&type=cpu&start=${healthy.start}`)
    return (top?.data?.profiles ?? 0) > 0
  })
  await stopOrders()
  await stop(demo)
  healthy.end = Date.now()

  // CPU profiles cover the real time from the profiler's start to each
  // upload: the slow demo's begin after healthy.end.
  slowStart = Date.now()
  stopOrders = placeOrders(await startDemo('vigil-demo-slow-payments', grpcPort, ['--fault', 'slow-payments']))
  await until('a CPU profile of slow payments', 60_000, async () => {
    const top = await getJSON(`${url}/api/v1/profiles/top?service=payments&type=cpu&start=${slowStart}`)
    return (top?.data?.profiles ?? 0) > 0
  })
  // The slow demo burns CPU in scoreFraud at its own 20 orders a second;
  // what the test reads is stored by now, and the other worker's specs
  // share these two cores.
  await stopOrders()
  await stop(demo)
})

test.afterAll(async () => {
  await stopOrders?.()
  await stop(demo)
  await stop(server)
  process.removeListener('exit', killNow)
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

test('under slow-payments the flame graph shows scoreFraud, and the diff against the healthy minutes marks it grown', async ({ page }) => {
  // Two flame graphs, a diff and a reload: on a loaded machine (a full CI
  // run, the other worker's specs beside it) more than the default minute.
  test.setTimeout(120_000)
  // The slow stretch, as the time picker's absolute range.
  const slow = `from=${slowStart}&to=${Date.now() + 1_000}`
  await page.goto(`${url}/profiles?service=payments&type=cpu&${slow}`)
  const flame = page.getByTestId('flamegraph')
  await expect(flame.locator(SCORE_FRAUD)).toHaveCount(1)
  await expect(flame.locator(SCORE_FRAUD)).toContainText('scoreFraud')
  await expect(flame.locator(SCORE_FRAUD)).toBeVisible()
  // It is where the CPU went: the top function by self value.
  await expect(page.getByTestId('profile-top').locator('tbody tr').first()).toContainText('.scoreFraud')
  await screenshot(page, 'profiles-slow-payments')

  // Compare with the healthy stretch, as a user types it in.
  await page.locator('select[name=compare]').selectOption('custom')
  await page.locator('input[name=baseline_start]').fill(new Date(healthy.start).toISOString())
  await page.locator('input[name=baseline_end]').fill(new Date(healthy.end).toISOString())
  await page.getByRole('button', { name: 'Apply', exact: true }).click()
  await expect(page).toHaveURL(/compare=custom/)
  await expect(page).toHaveURL(/baseline_end=/)

  const checkDiff = async () => {
    const diff = page.getByTestId('diff-flamegraph')
    await expect(diff.locator(SCORE_FRAUD)).toHaveClass(/\bfg-grew\b/)
    // Both ranges hold payments' samples: the healthy one is a real baseline.
    await expect(page.getByTestId('diff-ranges')).not.toContainText(/: 0 profiles/)
    // Changes are ranked by size either way (the healthy minutes' own
    // frames shrink); the first growth is scoreFraud, from nothing.
    const grown = page.getByTestId('profile-changes').locator('tbody tr[data-change=grew]').first()
    await expect(grown).toContainText('.scoreFraud')
    await expect(grown.locator('td').nth(3)).toHaveText('0.0%')
    await diff.locator(SCORE_FRAUD).focus()
    await expect(page.getByTestId('fg-diff-hover')).toContainText(/scoreFraud: 0\.00% → \d+\.\d\d% of the whole \(\+\d+\.\d\d pts\)/)
  }
  await checkDiff()
  await screenshot(page, 'profiles-slow-payments-diff')

  // The address holds the whole view: opened afresh, it shows the same diff.
  const link = page.url()
  expect(new URL(link).searchParams.get('baseline_start')).toBe(new Date(healthy.start).toISOString())
  await page.goto('about:blank')
  await page.goto(link)
  await expect(page.locator('select[name=compare]')).toHaveValue('custom')
  await checkDiff()
})
