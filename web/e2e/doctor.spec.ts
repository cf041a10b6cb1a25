// The doctor page: findings from the running server (global-setup's rules
// include one named with HTML whose alerts reach a receiver that sends
// nothing, so the doctor reports it), "Run now", filters in the URL, and, against canned reports,
// what links where, check errors and the empty state.
import type { Page, Route } from '@playwright/test'
import { expect, screenshot, test } from './fixtures'

const XSS_RULE = '<img src=x onerror="window.__xss=5">'

async function expectInert(page: Page) {
  expect(await page.locator('img[src="x"]').count()).toBe(0)
  expect(await page.locator('main script').count()).toBe(0)
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined()
}

const finding = (page: Page, code: string) => page.locator(`[data-testid="finding"][data-code="${code}"]`)

test('doctor page: the server’s findings, rule names as text, Run now and filters in the URL', async ({ page }) => {
  await page.goto('/doctor')
  // The report kept from the server's first run may predate the rules' first
  // evaluation: run the checks until the doctor names the rule.
  const subject = page.getByTestId('finding-subject').getByText(`e2e/${XSS_RULE}`, { exact: true })
  const unrouted = finding(page, 'alert_unrouted').filter({ has: subject })
  await expect(async () => {
    await page.getByRole('button', { name: 'Run now' }).click()
    await expect(unrouted).toHaveCount(1, { timeout: 2000 })
  }).toPass({ timeout: 30_000 })
  await expect(unrouted.getByTestId('finding-summary')).toContainText('nobody is notified')
  await expect(unrouted.getByTestId('finding-cause')).toContainText('no route')
  await expect(unrouted.getByTestId('finding-fix')).toContainText('alertname=')
  await expect(unrouted.locator('.state-badge')).toHaveText('warning')
  await expectInert(page)

  // Findings are grouped most urgent first; the nav counts critical and warning ones.
  const groups = await page.locator('.finding-group').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-testid')))
  expect(groups).toEqual(['findings-critical', 'findings-warning', 'findings-info'].filter((g) => groups.includes(g)))
  const urgent = await page.locator('[data-testid="finding"][data-severity="critical"], [data-testid="finding"][data-severity="warning"]').count()
  expect(urgent).toBeGreaterThan(0)
  await expect(page.getByTestId('doctor-count')).toHaveText(String(urgent))
  await expect(page.getByTestId('checked-at')).toContainText('checked at')

  // Run now asks for a fresh report, and the time of the check moves.
  const before = await page.getByTestId('checked-at').getAttribute('data-checked-at')
  const refresh = page.waitForRequest((r) => r.url().includes('/api/doctor?refresh=1'))
  await page.getByRole('button', { name: 'Run now' }).click()
  await refresh
  await expect(page.getByTestId('checked-at')).not.toHaveAttribute('data-checked-at', before!)

  // The filters live in the URL and survive a reload.
  await page.getByLabel('Severity').selectOption('warning')
  await expect(page).toHaveURL(/severity=warning/)
  await expect(page.locator('[data-testid="finding"]:not([data-severity="warning"])')).toHaveCount(0)
  await page.getByLabel('Code').selectOption('alert_unrouted')
  await expect(page).toHaveURL(/code=alert_unrouted/)
  await expect(page.locator('[data-testid="finding"]:not([data-code="alert_unrouted"])')).toHaveCount(0)
  await expect(unrouted).toHaveCount(1)
  await page.reload()
  await expect(page.getByLabel('Severity')).toHaveValue('warning')
  await expect(page.getByLabel('Code')).toHaveValue('alert_unrouted')
  await expect(unrouted).toHaveCount(1)
  await expect(page.locator('[data-testid="finding"]:not([data-code="alert_unrouted"])')).toHaveCount(0)
  await page.getByLabel('Code').selectOption('')
  await expect(page).not.toHaveURL(/code=/)

  // The text filter too: only the rule's findings, its name as text.
  await page.goto('/doctor?q=__xss')
  await expect(page.getByLabel('Filter by subject or summary')).toHaveValue('__xss')
  await expect(unrouted).toHaveCount(1)
  await expect(page.getByTestId('finding').filter({ hasNotText: '__xss' })).toHaveCount(0)
  await expectInert(page)
  await screenshot(page, 'doctor')
})

const TRACE_A = '4bf92f3577b34da6a3ce929d0e0e4736'
const TRACE_B = '00f067aa0ba902b74bf92f3577b34da6'

// A canned report: a hop between two demo services with trace ids, a target
// with a series, a service, and a check that could not run.
const REPORT = {
  checked_at: '2026-11-21T09:00:00Z',
  errors: ['spans: the trace store is closed'],
  findings: [
    {
      code: 'broken_propagation',
      severity: 'critical',
      subject: 'gateway → orders',
      evidence: {
        summary: '412 of 1030 calls from gateway to orders (40%) start a new trace in orders',
        values: { ratio: 0.4, orphans: 412 },
        window: 'last 15m0s',
        samples: [TRACE_A, TRACE_B.toUpperCase(), '00f067aa0ba902b7'],
      },
      cause: 'orders does not extract the trace context gateway sends',
      fix: 'wrap orders’ HTTP handler with otelhttp.NewHandler',
    },
    {
      code: 'target_down',
      severity: 'critical',
      subject: 'shop http://127.0.0.1:1/metrics',
      evidence: { summary: 'the last scrape failed (refused)', samples: ['up{job="shop",instance="127.0.0.1:1"}'] },
      cause: 'nothing listens on 127.0.0.1:1',
      fix: 'start the service',
    },
    {
      code: 'alert_unrouted',
      severity: 'warning',
      subject: 'shop/Checkout',
      evidence: { summary: 'its alerts route only to none', samples: ['{alertname="Checkout"}', '{alertname="Checkout"}'] },
      cause: 'no route matches',
      fix: 'add a route',
    },
    {
      code: 'logs_without_trace',
      severity: 'info',
      subject: 'payments',
      evidence: { summary: '30 of 200 log records carry no trace id', values: { share: 0.15 } },
      cause: 'the service logs outside the request context',
      fix: 'log with slog.InfoContext',
    },
  ],
}

async function serve(page: Page, body: (url: URL) => unknown) {
  await page.route(/\/api\/doctor(\?|$)/, (route: Route) =>
    route.fulfill({ contentType: 'application/json', body: JSON.stringify(body(new URL(route.request().url()))) }),
  )
}

test('doctor page: samples link to what they are, services in subjects link to their pages, check errors show', async ({ page, request }) => {
  // The demo's services are known, so subjects naming them become links.
  await expect
    .poll(async () => ((await (await request.get('/api/services')).json()).data ?? []) as string[], { timeout: 30_000 })
    .toEqual(expect.arrayContaining(['gateway', 'orders', 'payments']))
  await serve(page, () => REPORT)
  await page.goto('/doctor')

  const hop = finding(page, 'broken_propagation')
  await expect(hop.getByTestId('subject-service')).toHaveText(['gateway', 'orders'])
  await expect(hop.getByTestId('subject-service').first()).toHaveAttribute('href', /^\/services\/gateway(\?|$)/)
  await expect(hop.getByTestId('finding-subject')).toHaveText('gateway → orders')
  const samples = hop.getByTestId('sample')
  await expect(samples).toHaveCount(3)
  await expect(samples.nth(0)).toHaveAttribute('data-kind', 'trace')
  await expect(samples.nth(0)).toHaveAttribute('href', new RegExp(`^/traces/${TRACE_A}(\\?|$)`))
  await expect(samples.nth(1)).toHaveAttribute('href', new RegExp(`^/traces/${TRACE_B}(\\?|$)`))
  await expect(samples.nth(2)).toHaveAttribute('data-kind', 'text') // a span id is not a trace id
  await expect(hop.getByTestId('finding-values')).toContainText('orphans 412')
  await expect(hop.getByTestId('finding-values')).toContainText('ratio 0.4')
  await expect(hop.getByTestId('finding-window')).toHaveText('last 15m')

  const series = finding(page, 'target_down').getByTestId('sample')
  await expect(series).toHaveAttribute('data-kind', 'series')
  const u = new URL((await series.getAttribute('href'))!, 'http://x')
  expect(u.pathname).toBe('/explore')
  expect(u.searchParams.get('query')).toBe('up{job="shop",instance="127.0.0.1:1"}')
  await expect(finding(page, 'target_down').getByTestId('subject-service')).toHaveCount(0)

  // A label set is not a series (and is shown once); a rule is not a service.
  await expect(finding(page, 'alert_unrouted').getByTestId('sample')).toHaveCount(1)
  await expect(finding(page, 'alert_unrouted').getByTestId('sample')).toHaveAttribute('data-kind', 'text')
  await expect(finding(page, 'alert_unrouted').getByTestId('subject-service')).toHaveCount(0)
  await expect(finding(page, 'logs_without_trace').getByTestId('subject-service')).toHaveAttribute('href', /^\/services\/payments(\?|$)/)

  await expect(page.getByTestId('doctor-errors')).toContainText('spans: the trace store is closed')
  await expect(page.getByTestId('doctor-count')).toHaveText('3')
  await expect(page.getByTestId('doctor-empty')).toHaveCount(0)
  await screenshot(page, 'doctor-links')

  // Following a service link opens its page.
  await hop.getByTestId('subject-service').first().click()
  await expect(page).toHaveURL(/\/services\/gateway/)
})

test('doctor page: the empty state names the time of the check; Run now updates it', async ({ page }) => {
  let runs = 0
  await serve(page, (url) => {
    if (url.searchParams.get('refresh')) runs++
    return { findings: [], checked_at: runs ? '2026-11-21T10:30:00Z' : '2026-11-21T10:00:00Z' }
  })
  await page.goto('/doctor')
  const empty = page.getByTestId('doctor-empty')
  await expect(empty).toContainText('No broken seam found')
  // The page shows local time as 2026-11-21 10:00:00; the browser runs in this process's time zone.
  const local = (iso: string) => {
    const d = new Date(iso)
    const p = (n: number) => String(n).padStart(2, '0')
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
  }
  await expect(empty).toContainText(local('2026-11-21T10:00:00Z'))
  await expect(page.getByTestId('doctor-count')).toHaveCount(0)
  await expect(page.getByTestId('finding')).toHaveCount(0)
  await screenshot(page, 'doctor-empty')

  await page.getByRole('button', { name: 'Run now' }).click()
  await expect(empty).toContainText(local('2026-11-21T10:30:00Z'))
  expect(runs).toBe(1)

  // Filters on an empty report keep the empty state (not "nothing matches").
  await page.getByLabel('Severity').selectOption('critical')
  await expect(page).toHaveURL(/severity=critical/)
  await expect(empty).toBeVisible()
})
