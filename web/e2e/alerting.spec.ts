// The alerting pages against the rules, SLO and Alertmanager that
// global-setup configures: alerts from rules, silencing one and expiring the
// silence, the SLO page, and annotations that look like HTML shown as text.
import type { APIRequestContext, Page } from '@playwright/test'
import { expect, screenshot, test } from './fixtures'

// Each test that creates silences signs them with its own name: tests run in
// parallel and clean up only their own.
const AUTHOR = 'e2e-test-alert'
const AUTHOR2 = 'e2e-test-operators'
const XSS_DESCRIPTION = '<img src=x onerror="window.__xss=3"> <script>window.__xss=4</script>'

async function expectInert(page: Page) {
  expect(await page.locator('img[src="x"]').count()).toBe(0)
  expect(await page.locator('main script').count()).toBe(0)
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined()
}

// Silences left by an earlier run against the same server (VIGIL_URL) would
// keep the alert silenced: expire this spec's own.
async function expireOwnSilences(request: APIRequestContext, author: string) {
  const r = await request.get('/api/v2/silences')
  expect(r.status(), 'vigil serves the Alertmanager API at /api/v2 (alertmanager_config_file is set)').toBe(200)
  for (const s of (await r.json()) as { id: string; createdBy: string; status: { state: string } }[])
    if (s.createdBy === author && s.status.state !== 'expired') expect((await request.delete(`/api/v2/silence/${s.id}`)).ok()).toBe(true)
}

const group = (page: Page, name: string) => page.locator(`[data-testid="alert-group"][data-alertname="${name}"]`)

test('alerts page: alerts from rules by name, state and annotations as text', async ({ page }) => {
  await expect(async () => {
    await page.goto('/alerts')
    await expect(group(page, 'E2EAlwaysFiring').locator('.state-badge').first()).toHaveText('firing', { timeout: 2000 })
  }).toPass({ timeout: 30_000 })
  const firing = group(page, 'E2EAlwaysFiring')
  const row = firing.getByTestId('alert-row')
  await expect(row).toHaveCount(1)
  await expect(row).toContainText('severity="page"')
  await expect(row).toContainText('team="e2e"')
  await expect(row).toContainText('Always firing, for the browser tests')
  await expect(row.getByTestId('alert-annotations').getByText(XSS_DESCRIPTION, { exact: true })).toBeVisible()
  await expect(row).toContainText('ago')
  await expect(group(page, 'E2EPending').locator('.state-badge').first()).toHaveText('pending')
  await expectInert(page)
  await screenshot(page, 'alerts')

  // The state filter lives in the URL.
  await page.getByLabel('State').selectOption('firing')
  await expect(page).toHaveURL(/state=firing/)
  await expect(group(page, 'E2EPending')).toHaveCount(0)
  await expect(group(page, 'E2EAlwaysFiring')).toBeVisible()
  await page.reload()
  await expect(group(page, 'E2EPending')).toHaveCount(0)
  await expect(group(page, 'E2EAlwaysFiring')).toBeVisible()
})

test('silence an alert from the alerts page, then expire it on the silences page', async ({ page, request }) => {
  await expireOwnSilences(request, AUTHOR)
  await page.goto('/alerts?q=E2EAlwaysFiring')
  const row = group(page, 'E2EAlwaysFiring').getByTestId('alert-row')
  // Once Alertmanager has the alert it says so, and that it notifies.
  await expect(row).toContainText('notifying', { timeout: 30_000 })
  await row.getByRole('button', { name: 'Silence' }).click()
  await expect(page).toHaveURL(/silence=/)

  const form = page.getByTestId('silence-form')
  const matchers = form.getByTestId('matcher-row')
  await expect(matchers).toHaveCount(3) // alertname, severity, team
  await expect(matchers.nth(0).getByLabel('Label name')).toHaveValue('alertname')
  await expect(matchers.nth(0).getByLabel('Label value')).toHaveValue('E2EAlwaysFiring')
  await expect(form.getByLabel('Duration')).toHaveValue('2h')
  await expect(form.getByTestId('silence-preview')).toContainText('Selects 1 of')
  // Author and comment are required.
  await form.getByLabel('Author').fill('')
  await form.getByRole('button', { name: 'Create silence' }).click()
  await expect(form.getByRole('alert')).toContainText('author')
  await form.getByLabel('Author').fill(AUTHOR)
  await form.getByLabel('Comment').fill('silenced by the browser test')
  await screenshot(page, 'alerts-silence-form')
  await form.getByRole('button', { name: 'Create silence' }).click()

  const created = page.getByTestId('silence-created')
  await expect(created).toContainText('created')
  await expect(page.getByTestId('silence-form')).toHaveCount(0)
  const id = (await created.getByRole('link').textContent())!.trim()
  expect(id).toMatch(/^[0-9a-f-]{36}$/)
  await expect(row.getByTestId('alert-silenced')).toContainText('silenced by')
  await expect(row.getByRole('button', { name: 'Silenced' })).toBeDisabled()
  await screenshot(page, 'alerts-silenced')

  // The silences page lists it, highlighted, with the alert it mutes.
  await created.getByRole('link').click()
  await expect(page).toHaveURL(new RegExp(`/silences\\?id=${id}`))
  const silence = page.getByTestId('silences-current').locator(`[data-id="${id}"]`)
  await expect(silence).toBeVisible()
  await expect(silence).toHaveClass(/highlight/)
  await expect(silence.getByTestId('silence-matchers')).toContainText('alertname="E2EAlwaysFiring"')
  await expect(silence.getByTestId('silence-matchers')).toContainText('team="e2e"')
  await expect(silence).toContainText(AUTHOR)
  await expect(silence).toContainText('silenced by the browser test')
  await expect(silence.locator('.state-badge')).toHaveText('active')
  await expect(silence.locator('td.num')).toHaveText('1')
  await screenshot(page, 'silences')

  // Expire asks first, then moves the silence to the expired list.
  await silence.getByRole('button', { name: 'Expire' }).click()
  await silence.getByRole('button', { name: 'Yes, expire' }).click()
  await expect(page.getByTestId('silences-current').locator(`[data-id="${id}"]`)).toHaveCount(0)
  await page.getByText(/^Expired \(\d+\)$/).click()
  await expect(page).toHaveURL(/expired=1/)
  await expect(page.getByTestId('silences-expired').locator(`[data-id="${id}"] .state-badge`)).toHaveText('expired')

  // And the alert notifies again.
  await page.goto('/alerts?q=E2EAlwaysFiring')
  await expect(row).toContainText('notifying')
})

const AUTHOR3 = 'e2e-test-external'

test('alerts posted to the Alertmanager by other senders are listed and silenced from their row', async ({ page, request }) => {
  await expireOwnSilences(request, AUTHOR3)
  // As amtool alert add and Prometheus do: POST /api/v2/alerts. Labels that
  // look like HTML are shown as text.
  const labels = { alertname: 'E2EExternal', severity: 'warning', instance: '<img src=x onerror="window.__xss=6">' }
  const now = Date.now()
  const post = await request.post('/api/v2/alerts', {
    data: [
      {
        labels,
        annotations: { summary: 'Posted like amtool alert add' },
        startsAt: new Date(now).toISOString(),
        endsAt: new Date(now + 3600e3).toISOString(),
        generatorURL: 'http://prometheus.example:9090/graph?g0.expr=up',
      },
    ],
  })
  expect(post.status(), await post.text()).toBe(200)

  await page.goto('/alerts?q=E2EExternal')
  const g = group(page, 'E2EExternal')
  const row = g.getByTestId('alert-row')
  await expect(row).toHaveCount(1, { timeout: 20_000 })
  await expect(g).toContainText('external, no rule in vigil')
  await expect(row.getByTestId('alert-source-external')).toContainText('external')
  await expect(row.getByTestId('alert-source-external').getByRole('link')).toHaveText('prometheus.example:9090')
  await expect(row).toContainText('Posted like amtool alert add')
  await expect(row).toContainText('instance="<img src=x onerror=\\"window.__xss=6\\">"')
  await expect(row).toContainText('notifying')
  // vigil's own alerts say so.
  await page.goto('/alerts?q=E2EAlwaysFiring')
  await expect(group(page, 'E2EAlwaysFiring').getByTestId('alert-row')).toContainText('vigil rule')

  await page.goto('/alerts?q=E2EExternal')
  await row.getByRole('button', { name: 'Silence' }).click()
  const form = page.getByTestId('silence-form')
  await expect(form.getByTestId('matcher-row')).toHaveCount(3) // alertname, instance, severity
  await expect(form.getByTestId('silence-preview')).toContainText('Selects 1 of')
  await form.getByLabel('Author').fill(AUTHOR3)
  await form.getByLabel('Comment').fill('silencing an external alert')
  await form.getByRole('button', { name: 'Create silence' }).click()
  await expect(page.getByTestId('silence-created')).toContainText('created')
  await expect(row.getByTestId('alert-silenced')).toContainText('silenced by')
  await expect(row.getByRole('button', { name: 'Silenced' })).toBeDisabled()
  await expectInert(page)
  await screenshot(page, 'alerts-external-silenced')
  await expireOwnSilences(request, AUTHOR3)
})

test('new silence on the silences page: matchers with operators', async ({ page, request }) => {
  await expireOwnSilences(request, AUTHOR2)
  await page.goto('/silences')
  await page.getByRole('button', { name: 'New silence' }).click()
  await expect(page).toHaveURL(/new=1/)
  const form = page.getByTestId('silence-form')
  const first = form.getByTestId('matcher-row').first()
  await first.getByLabel('Label name').fill('team')
  await first.getByLabel('Operator').selectOption('=~')
  await first.getByLabel('Label value').fill('nobody-[0-9]+')
  await form.getByRole('button', { name: '+ add matcher' }).click()
  const second = form.getByTestId('matcher-row').nth(1)
  await second.getByLabel('Label name').fill('severity')
  await second.getByLabel('Operator').selectOption('!=')
  await second.getByLabel('Label value').fill('info')
  await expect(form.getByTestId('silence-preview')).toContainText('Selects 0 of')
  await form.getByLabel('Duration').fill('90x')
  await form.getByLabel('Author').fill(AUTHOR2)
  await form.getByLabel('Comment').fill('operators')
  await form.getByRole('button', { name: 'Create silence' }).click()
  await expect(form.getByRole('alert')).toContainText('not a duration')
  await form.getByLabel('Duration').fill('1h30m')
  await form.getByRole('button', { name: 'Create silence' }).click()

  await expect(page.getByTestId('silence-form')).toHaveCount(0)
  await expect(page).toHaveURL(/id=/)
  const id = new URL(page.url()).searchParams.get('id')!
  const silence = page.getByTestId('silences-current').locator(`[data-id="${id}"]`)
  await expect(silence.getByTestId('silence-matchers')).toContainText('team=~"nobody-[0-9]+"')
  await expect(silence.getByTestId('silence-matchers')).toContainText('severity!="info"')
  await expect(silence).toContainText(/in 1h (29|30)m/)

  // Duplicate prefills the form with its matchers, through the URL.
  await silence.getByRole('button', { name: 'Duplicate' }).click()
  await expect(page).toHaveURL(/matcher=/)
  await expect(form.getByTestId('matcher-row')).toHaveCount(2)
  await expect(form.getByTestId('matcher-row').first().getByLabel('Operator')).toHaveValue('=~')
  await form.getByRole('button', { name: 'Cancel' }).click()
  await expireOwnSilences(request, AUTHOR2)
})

test('without an Alertmanager the alerts and silences pages say so', async ({ page, consoleErrors }) => {
  await page.route('**/api/v2/**', (route) =>
    route.fulfill({ status: 404, contentType: 'application/json', body: '{"status":"error","errorType":"not_found","error":"not found"}' }),
  )
  await page.goto('/alerts')
  await expect(page.getByTestId('no-alertmanager')).toContainText('No Alertmanager answers at /api/v2')
  await expect(page.getByTestId('no-alertmanager')).toContainText('alertmanager_config_file')
  await expect(group(page, 'E2EAlwaysFiring')).toBeVisible({ timeout: 30_000 })
  await expect(group(page, 'E2EAlwaysFiring').getByRole('button', { name: 'Silence' })).toHaveCount(0)
  await page.goto('/silences')
  await expect(page.getByTestId('no-alertmanager')).toContainText('no silences to manage')
  await screenshot(page, 'silences-no-alertmanager')
  // The browser reports each 404 answer on the console: expected here.
  const rest = consoleErrors.filter((e) => !/status of 404/.test(e))
  consoleErrors.splice(0, consoleErrors.length, ...rest)
})

test('SLO page: objective, SLIs, budget, burn-rate chart and alerts of an SLO', async ({ page, request }) => {
  // Its waits (the page, then a whole minute of recorded SLI) add up to
  // more than the default test timeout on a busy machine.
  test.setTimeout(180_000)
  // A config change of the SLO's service (an item named after it), to be
  // marked on the burn chart.
  const item = `e2e-markers/payments/slo${Date.now().toString(36)}`
  expect((await request.put(`/api/v1/config/${item}`, { data: 'x', headers: { 'Content-Type': 'text/plain' } })).ok()).toBe(true)
  const row = page.getByTestId('slo-row').filter({ hasText: 'charge-errors' })
  await expect(async () => {
    await page.goto('/slos?from=now-15m')
    await expect(row).toBeVisible({ timeout: 2000 })
    await expect(page.getByTestId('slo-burn-chart').locator('canvas').first()).toBeVisible({ timeout: 2000 })
  }).toPass({ timeout: 60_000 })
  await expect(row).toContainText('payments')
  await expect(row).toContainText('99.9%')
  await expect(row.getByTestId('slo-page-alert')).toContainText(/page: (inactive|pending|firing)/)
  await expect(row.getByTestId('slo-ticket-alert')).toContainText(/ticket: (inactive|pending|firing)/)
  const details = page.getByTestId('slo-details')
  await expect(details.locator('h2')).toHaveText('payments / charge-errors')
  await expect(details.getByTestId('slo-windows')).toContainText('5m')
  await expect(details.getByTestId('slo-windows')).toContainText('30d')
  // The thresholds are drawn with the burn rate (uPlot's legend is text).
  await expect(details.getByTestId('slo-burn-chart')).toContainText('page: 14.4×')
  await expect(details.getByTestId('slo-burn-chart')).toContainText('ticket: 1×')
  await expect(details.getByTestId('slo-burn-chart').locator(`[data-testid=change-marker][title*="${item}"]`)).toHaveCount(1)
  // The server started minutes ago: the period's figures say how little of
  // the 30 days they are based on (once the first SLI is recorded on a whole
  // minute, the resolution the page looks for it at).
  await expect(async () => {
    await page.goto('/slos?from=now-15m')
    await expect(row.getByTestId('slo-coverage')).toHaveText(/^based on \d+ min of data of the 30 d window$/, { timeout: 2000 })
  }).toPass({ timeout: 90_000 })
  await expect(details).toContainText(/so far \d+ min of it recorded/)
  await screenshot(page, 'slos')

  // Selecting an SLO is in the URL.
  await row.getByRole('link', { name: 'charge-errors' }).click()
  await expect(page).toHaveURL(/slo=payments-charge-errors/)
})

test('SLO page: empty state says how to add SLOs', async ({ page }) => {
  await page.route(
    (u) => u.pathname === '/api/v1/query' && u.searchParams.get('query') === 'sloth_slo_info',
    (route) => route.fulfill({ contentType: 'application/json', body: '{"status":"success","data":{"resultType":"vector","result":[]}}' }),
  )
  await page.goto('/slos')
  await expect(page.locator('.state.empty')).toContainText('No SLOs: add slos: to vigil.yaml (see docs/alerting.md)')
  await screenshot(page, 'slos-empty')
})
