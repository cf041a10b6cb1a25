import { expect, screenshot, test } from './fixtures'

test('log explorer: search, histogram, link to the trace', async ({ page }) => {
  await page.goto('/logs')
  await page.getByRole('searchbox').fill('order relayed')
  await page.locator('select[name=service]').selectOption('gateway')
  await page.getByRole('button', { name: 'Search' }).click()
  await expect(page).toHaveURL(/q=order\+relayed/)

  const histogram = page.getByTestId('log-histogram')
  await expect(histogram.locator('canvas').first()).toBeVisible()
  await expect(histogram).toContainText('log records')
  const lines = page.getByTestId('log-results').getByTestId('log-line')
  await expect(lines.first()).toBeVisible()
  await expect(lines.first()).toContainText('order relayed')
  await screenshot(page, 'logs')

  // Severity filter keeps the URL as the state.
  await page.getByRole('checkbox', { name: 'info' }).check()
  await expect(page).toHaveURL(/severity=info/)
  await expect(lines.first()).toBeVisible()

  // An attribute of an expanded line becomes a filter.
  await lines.first().locator('.body').click()
  await lines.first().locator('.logline-details tr', { hasText: 'status' }).getByRole('button', { name: 'filter' }).click()
  await expect(page).toHaveURL(/attrs=status%3D201/)
  await expect(page.locator('input[name=attrs]')).toHaveValue('status=201')
  await expect(lines.first()).toBeVisible()

  // Expand a line, then follow its trace link: the oldest line on the page,
  // whose trace is surely stored by now.
  const line = lines.last()
  await line.locator('.body').click()
  await expect(line.locator('.logline-details')).toContainText('trace_id')
  await line.getByTestId('log-trace-link').click()
  await expect(page).toHaveURL(/\/traces\/[0-9a-f]{32}/)
  await expect(page.getByTestId('waterfall').getByTestId('span-row').first()).toBeVisible()
  // The log's span is selected.
  await expect(page.getByTestId('span-details')).toBeVisible()
})

test('log explorer: load more follows the cursor', async ({ page }) => {
  await page.goto('/logs')
  const lines = page.getByTestId('log-results').getByTestId('log-line')
  await expect(lines).toHaveCount(100)
  const lastOfFirstPage = await lines.nth(99).locator('.ts').textContent()
  await page.getByRole('button', { name: 'Load more' }).click()
  await expect(lines).toHaveCount(200)
  // Newest first across pages: the second page starts no later than the first ended.
  const firstOfSecondPage = await lines.nth(100).locator('.ts').textContent()
  expect(firstOfSecondPage! <= lastOfFirstPage!).toBe(true)
  await expect(page.getByText('200 lines, newest first')).toBeVisible()
})

test('a line shipped by a Loki agent links to its trace, and the trace shows it', async ({ page, request }) => {
  // A trace of the demo's, as an agent tailing its files would ship the
  // line that belongs to it: over Loki's push API, the id in the line.
  const logs = await (await request.get('/api/logs?service=gateway&limit=100')).json()
  let traceID = ''
  // The oldest first: their traces are surely stored by now.
  for (const id of logs.data.map((l: { trace_id: string }) => l.trace_id).filter(Boolean).reverse()) {
    if ((await request.get(`/api/traces/${id}`)).ok()) {
      traceID = id
      break
    }
  }
  expect(traceID).toMatch(/^[0-9a-f]{32}$/)
  const marker = `shipped by promtail ${Date.now()}`
  const push = await request.post('/loki/api/v1/push', {
    headers: { 'Content-Type': 'application/json' },
    data: {
      streams: [{
        stream: { job: 'varlogs', service_name: 'gateway-sidecar', filename: '/var/log/gateway.log' },
        values: [[String(Date.now() * 1e6), `level=warn msg="${marker}" trace_id=${traceID}`]],
      }],
    },
  })
  expect(push.status()).toBe(204)

  await page.goto('/logs')
  await page.getByRole('searchbox').fill(marker)
  await page.getByRole('button', { name: 'Search' }).click()
  const line = page.getByTestId('log-results').getByTestId('log-line').first()
  await expect(line).toContainText(marker)
  await line.locator('.body').click()
  await line.getByTestId('log-trace-link').click()
  await expect(page).toHaveURL(new RegExp(`/traces/${traceID}`))
  await expect(page.getByTestId('waterfall').getByTestId('span-row').first()).toBeVisible()
  await expect(page.getByTestId('trace-logs')).toContainText(marker)
  await screenshot(page, 'trace-with-shipped-line')
})
