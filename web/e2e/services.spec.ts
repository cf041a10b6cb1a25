import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { DEMO_SERVICES, expect, screenshot, test } from './fixtures'

test('services overview lists the demo services with RED numbers', async ({ page }) => {
  // The last 5 minutes: 10s sparkline steps, so a fresh server soon has
  // enough points to draw them.
  const gateway = page.getByTestId('services').getByRole('row').filter({ has: page.getByRole('link', { name: 'gateway', exact: true }) })
  await expect(async () => {
    await page.goto('/?from=now-5m')
    const table = page.getByTestId('services')
    for (const s of DEMO_SERVICES) await expect(table.getByRole('link', { name: s, exact: true })).toBeVisible({ timeout: 2000 })
    await expect(gateway.locator('canvas').first()).toBeVisible({ timeout: 1000 })
  }).toPass({ timeout: 45_000 })
  await expect(gateway).toContainText('/s')
  await screenshot(page, 'services')

  await gateway.getByRole('link', { name: 'gateway', exact: true }).click()
  await expect(page).toHaveURL(/\/services\/gateway/)
  await expect(page.getByTestId('operations')).toBeVisible()
  await screenshot(page, 'service-operations')
})

test('first load of the services overview', async ({ page }) => {
  // Once the server has RED data (which also warms its query path), measure
  // a cold browser load: a new context, nothing cached.
  await expect
    .poll(async () => ((await (await page.request.get('/api/red/services')).json()).data?.services ?? []).length, { timeout: 45_000 })
    .toBeGreaterThan(0)
  const t0 = Date.now()
  await page.goto('/')
  await page.getByTestId('services').getByRole('row').nth(1).waitFor()
  const wall = Date.now() - t0
  const sinceNavStart = await page.evaluate(() => Math.round(performance.now()))
  const msg = `first load: services overview rendered ${sinceNavStart} ms after navigation start (${wall} ms wall clock)`
  console.log(msg)
  // Recorded, not asserted: timings on a shared machine are noise, and the
  // number is reported in docs/performance.md from these records.
  writeFileSync(resolve(import.meta.dirname, '../test-results/first-load.txt'), msg + '\n')
  expect(sinceNavStart).toBeGreaterThan(0)
})

test('time picker offers 5m to 7 days; rates are over the data that exists', async ({ page, request }) => {
  await page.goto('/')
  const picker = page.getByLabel('Time range')
  const labels = await picker.locator('option').allTextContents()
  for (const l of ['Last 5 minutes', 'Last 30 minutes', 'Last 1 hour', 'Last 7 days']) expect(labels).toContain(l)
  await picker.selectOption({ label: 'Last 7 days' })
  await expect(page).toHaveURL(/from=now-7d/)
  await expect(picker.locator('option:checked')).toHaveText('Last 7 days')

  // The server began receiving spans minutes ago: over 7 days the rates
  // are over those minutes, and the page says so.
  const table = page.getByTestId('services')
  await expect(table.getByRole('link', { name: 'gateway', exact: true })).toBeVisible({ timeout: 30_000 })
  const end = Date.now() / 1000
  const api = (await (await request.get(`/api/red/services?start=${end - 7 * 86400}&end=${end}`)).json()).data
  expect(api.covered).toBeLessThan(86400)
  const gw = api.services.find((s: { name: string }) => s.name === 'gateway')
  // Not the 7-day average: calls over the covered part. The sparkline's
  // bins (an hour or more each here) hold all of gateway's calls; their
  // average over 7 days is far below the rate.
  const calls = gw.series.rate.reduce((a: number, p: [number, number | null]) => a + (p[1] ?? 0) * api.step, 0)
  expect(gw.rate).toBeCloseTo(calls / api.covered, 1)
  expect(gw.rate).toBeGreaterThan((calls / (7 * 86400)) * 10)
  await expect(page.getByTestId('rate-coverage')).toContainText(/Rates are per second over the last \d+ (s|min)( \d+ min)?, where spans exist, not over the whole 7 d of the range/)
  await screenshot(page, 'services-7d')
})

test('incident snapshot from the service page', async ({ page }) => {
  // The demo registers its instances in vigil's registry; the button asks
  // them for their /debug/snapshot (docs/snapshots.md) and links the bundle.
  await page.goto('/services/gateway')
  const box = page.getByTestId('snapshot')
  await box.getByRole('button', { name: 'Incident snapshot' }).click()
  await expect(box).toContainText('1 of 1 instances answered', { timeout: 30_000 })
  const link = box.getByRole('link', { name: /^Download .*gateway.*\.tar\.gz$/ })
  await expect(link).toBeVisible()
  const resp = await page.request.get((await link.getAttribute('href'))!)
  expect(resp.status()).toBe(200)
  expect(resp.headers()['content-type']).toBe('application/gzip')
  await screenshot(page, 'service-snapshot')
})
