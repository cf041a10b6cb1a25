// The Profiles page: a CPU profile sent to /ingest shows as a flame graph
// and a top-functions table, downloads as pprof, and is reached from a
// profiled span of the trace waterfall; the demo shop profiles itself, so
// its services' pages link to their flame graphs, and a service without
// profiles shows the empty state.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { expect, screenshot, test } from './fixtures'

// fixtures/cpu.pb.gz (made by fixtures/_gen): main.main calling
// shop.checkout -> shop.burnCPU (1.5 s, labelled span_id=00000000000000ab),
// shop.render (0.4 s) and a function named as markup (0.1 s).
const PPROF = readFileSync(resolve(import.meta.dirname, 'fixtures', 'cpu.pb.gz'))
// fixtures/cpu-render.pb.gz (fixtures/_gen -render): the same stacks after
// shop.render grew to 1.6 s and shop.burnCPU shrank to 0.3 s.
const PPROF_RENDER = readFileSync(resolve(import.meta.dirname, 'fixtures', 'cpu-render.pb.gz'))
const SPAN_ID = '00000000000000ab'
const MARKUP = 'shop.<img src=x onerror=alert(1)>'

// Each test sends its own service, so that tests running in parallel, or
// a rerun against a running vigil, see only their own samples.
// ago is how many seconds before now the profile's 10 s end; profiles is
// how many of the service's profiles the last hour holds after it.
async function sendProfile(request: import('@playwright/test').APIRequestContext, service: string, data = PPROF, ago = 0, profiles = 1) {
  const until = Math.floor(Date.now() / 1000) - ago
  const r = await request.post(`/ingest?name=${encodeURIComponent(`${service}.cpu{env=e2e}`)}&from=${until - 10}&until=${until}`, {
    headers: { 'Content-Type': 'application/octet-stream' },
    data,
  })
  expect(r.status(), await r.text()).toBe(200)
  // Durable once answered; wait until a query sees it anyway.
  await expect
    .poll(async () => (await (await request.get(`/api/v1/profiles/top?service=${service}&type=cpu`)).json()).data.profiles, { timeout: 30_000 })
    .toBe(profiles)
}

test('a sent CPU profile shows as a flame graph and top functions, and downloads as pprof', async ({ page, request }) => {
  const service = `profiled-${randomBytes(3).toString('hex')}`
  await sendProfile(request, service)

  await page.goto('/profiles')
  await expect(page.locator('select[name=service] option', { hasText: service })).toHaveCount(1)
  await page.locator('select[name=service]').selectOption(service)
  await expect(page).toHaveURL(new RegExp(`service=${service}`))

  const flame = page.getByTestId('flamegraph')
  for (const name of ['total', 'main.main', 'shop.checkout', 'shop.burnCPU', 'shop.render']) {
    await expect(flame.locator(`[data-testid=fg-frame][data-name="${name}"]`)).toHaveCount(1)
  }
  await expect(flame.getByText('shop.burnCPU', { exact: true })).toBeVisible()
  // A name that is markup is text.
  await expect(flame.getByText(MARKUP, { exact: true })).toHaveCount(1)
  expect(await page.locator('img[src="x"]').count()).toBe(0)

  const top = page.getByTestId('profile-top')
  await expect(top.locator('tbody tr').first()).toContainText('shop.burnCPU')
  await expect(top.locator('tbody tr').first()).toContainText('1.50 s')
  await expect(top.locator('tbody tr').first()).toContainText('75.0%')
  await expect(top).toContainText('shop.render')

  // Zoom into shop.checkout: its sibling shop.render leaves the graph.
  await flame.locator('[data-testid=fg-frame][data-name="shop.checkout"]').click()
  await expect(flame.locator('[data-testid=fg-frame][data-name="shop.render"]')).toHaveCount(0)
  await page.getByRole('button', { name: 'Reset zoom', exact: true }).click()
  await expect(flame.locator('[data-testid=fg-frame][data-name="shop.render"]')).toHaveCount(1)
  // By keyboard too: Enter on a frame zooms into it and shows its numbers.
  await flame.locator('[data-testid=fg-frame][data-name="shop.render"]').focus()
  await expect(page.getByTestId('fg-hover')).toContainText('shop.render: 400.0 ms (20.00%)')
  await page.keyboard.press('Enter')
  await expect(flame.locator('[data-testid=fg-frame][data-name="shop.checkout"]')).toHaveCount(0)
  await page.getByRole('button', { name: 'Reset zoom', exact: true }).click()

  const download = page.getByTestId('profile-download')
  const url = await download.getAttribute('href')
  expect(url).toContain(`service=${service}`)
  const r = await request.get(url!)
  expect(r.status()).toBe(200)
  expect(r.headers()['content-disposition']).toContain(`${service}-cpu-`)
  expect((await r.body()).length).toBeGreaterThan(0)
  await screenshot(page, 'profiles-flamegraph')

  // The label filter: a label the profile has keeps it, another empties the view.
  await page.locator('input[name=labels]').fill('env=other')
  await page.getByRole('button', { name: 'Apply', exact: true }).click()
  await expect(page.getByText(`No cpu samples of ${service} in this range`)).toBeVisible()
  await expect(page.getByTestId('profile-download')).toHaveCount(0)
  await page.locator('input[name=labels]').fill('env=e2e')
  await page.getByRole('button', { name: 'Apply', exact: true }).click()
  await expect(flame.locator('[data-testid=fg-frame][data-name="shop.burnCPU"]')).toHaveCount(1)
})

test('comparing with the previous range shows what grew in red and ranks it first', async ({ page, request }) => {
  const service = `profiled-${randomBytes(3).toString('hex')}`
  // 20 minutes ago burnCPU dominated; in the last minute render does.
  await sendProfile(request, service, PPROF, 20 * 60, 1)
  await sendProfile(request, service, PPROF_RENDER, 0, 2)

  // The last 15 minutes against the 15 before.
  await page.goto(`/profiles?service=${service}&from=now-15m`)
  await page.locator('select[name=compare]').selectOption('previous')
  await expect(page).toHaveURL(/compare=previous/)

  const diff = page.getByTestId('diff-flamegraph')
  const render = diff.locator('[data-testid=fg-frame][data-name="shop.render"]')
  const burn = diff.locator('[data-testid=fg-frame][data-name="shop.burnCPU"]')
  await expect(render).toHaveClass(/\bfg-grew\b/)
  await expect(burn).toHaveClass(/\bfg-shrank\b/)
  await expect(diff.locator('[data-testid=fg-frame][data-name="main.main"]')).toHaveClass(/\bfg-same\b/)
  // Its numbers on focus: 20% of the baseline's whole, 80% of the comparison's.
  await render.focus()
  await expect(page.getByTestId('fg-diff-hover')).toContainText('shop.render: 20.00% → 80.00% of the whole (+60.00 pts); 400.0 ms → 1.60 s')
  // A name that is markup is text here too.
  await expect(diff.getByText(MARKUP, { exact: true })).toHaveCount(1)
  expect(await page.locator('img[src="x"]').count()).toBe(0)

  const rows = page.getByTestId('profile-changes').locator('tbody tr')
  await expect(rows.first()).toContainText('shop.render')
  await expect(rows.first()).toContainText('+60.00 pts')
  await expect(rows.first()).toHaveAttribute('data-change', 'grew')
  await expect(rows.nth(1)).toContainText('shop.burnCPU')
  await expect(rows.nth(1)).toHaveAttribute('data-change', 'shrank')
  await expect(page.getByTestId('diff-ranges')).toContainText('1 profile')
  await screenshot(page, 'profiles-diff')

  // A custom baseline three hours ago holds nothing: everything grew.
  await page.locator('select[name=compare]').selectOption('custom')
  await page.locator('input[name=baseline_start]').fill(String(Math.floor(Date.now() / 1000) - 3 * 3600))
  await page.getByRole('button', { name: 'Apply', exact: true }).click()
  await expect(page).toHaveURL(/baseline_start=\d+/)
  await expect(page.getByTestId('diff-ranges')).toContainText('0 profiles')
  await expect(burn).toHaveClass(/\bfg-grew\b/)
  await expect(rows.first()).toContainText('shop.render')
})

test('a profiled span links to its own samples', async ({ page, request }) => {
  const service = `profiled-${randomBytes(3).toString('hex')}`
  await sendProfile(request, service)
  const traceId = randomBytes(16).toString('hex')
  const now = BigInt(Date.now()) * 1_000_000n
  const str = (key: string, v: string) => ({ key, value: { stringValue: v } })
  const r = await fetch(`${process.env.VIGIL_OTLP_HTTP}/v1/traces`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: [str('service.name', service)] },
          scopeSpans: [
            {
              scope: { name: 'e2e' },
              spans: [
                {
                  traceId,
                  spanId: SPAN_ID,
                  name: 'POST /checkout',
                  kind: 2,
                  startTimeUnixNano: String(now - 5_000_000_000n),
                  endTimeUnixNano: String(now),
                  attributes: [str('pyroscope.profile.id', SPAN_ID)],
                },
              ],
            },
          ],
        },
      ],
    }),
  })
  expect(r.status, await r.text()).toBe(200)
  await expect.poll(async () => (await request.get(`/api/traces/${traceId}`)).status(), { timeout: 30_000 }).toBe(200)

  await page.goto(`/traces/${traceId}`)
  // The span's details link the same view as its row in the waterfall.
  await page.getByTestId('span-row').first().click()
  const fromDetails = await page.getByTestId('span-details').getByTestId('span-profile').getAttribute('href')
  expect(fromDetails).toContain(`span_id=${SPAN_ID}`)
  expect(fromDetails).toBe(await page.getByTestId('span-profile-link').getAttribute('href'))
  await page.getByTestId('span-profile-link').click()
  await expect(page).toHaveURL(/\/profiles\?/)
  await expect(page).toHaveURL(new RegExp(`span_id=${SPAN_ID}`))
  await expect(page.getByTestId('span-filter')).toContainText(SPAN_ID)
  const flame = page.getByTestId('flamegraph')
  await expect(flame.locator('[data-testid=fg-frame][data-name="shop.burnCPU"]')).toHaveCount(1)
  // Only the span's samples: the unlabelled ones are not in its graph.
  await expect(flame.locator('[data-testid=fg-frame][data-name="shop.render"]')).toHaveCount(0)
  await expect(page.getByTestId('profile-top')).toContainText('shop.burnCPU')
  await expect(page.getByTestId('profile-top')).not.toContainText('shop.render')
  await screenshot(page, 'profiles-span')
})

test('the demo shop profiles itself: its service page links to its flame graph', async ({ page }) => {
  // gateway, not payments: the four services share one profiler, whose
  // samples outside any request (the load generator, the runtime) are
  // filed under gateway, which started it; a healthy payments charge
  // costs so little CPU that it may have no sample for a minute.
  await page.goto('/services/gateway')
  await page.getByTestId('service-profiles').click()
  await expect(page).toHaveURL(/\/profiles\?service=gateway/)
  // The demo uploads every 10 s: the first profile may not be in yet.
  await expect(async () => {
    await page.reload()
    await expect(page.getByTestId('flamegraph')).toBeVisible({ timeout: 2_000 })
  }).toPass({ timeout: 45_000 })
  await expect(page.getByTestId('profile-download')).toBeVisible()
  await screenshot(page, 'profiles-demo')
})

test('a service without profiles: a helpful empty state', async ({ page }) => {
  await page.goto('/profiles?service=no-such-service&type=cpu')
  await expect(page.getByText('No cpu samples of no-such-service in this range')).toBeVisible()
  await expect(page.getByTestId('flamegraph')).toHaveCount(0)
  await expect(page.getByTestId('profile-download')).toHaveCount(0)
  await screenshot(page, 'profiles-empty')
})
