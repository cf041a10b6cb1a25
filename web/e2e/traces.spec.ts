import { expect, screenshot, test } from './fixtures'

test('services → trace search → trace → span details and logs', async ({ page }) => {
  await expect(async () => {
    await page.goto('/')
    await expect(page.getByTestId('services').getByRole('link', { name: 'gateway', exact: true })).toBeVisible({ timeout: 2000 })
  }).toPass({ timeout: 45_000 })
  const gateway = page.getByTestId('services').getByRole('row').filter({ has: page.getByRole('link', { name: 'gateway', exact: true }) })
  await gateway.getByRole('link', { name: 'Traces' }).click()
  await expect(page).toHaveURL(/\/traces\?.*service=gateway/)

  // Narrow to the checkout path, whose gateway span logs "order relayed".
  const op = page.locator('select[name=operation]')
  await expect(op.locator('option', { hasText: 'POST /orders' })).toHaveCount(1)
  await op.selectOption('POST /orders')
  await page.getByRole('button', { name: 'Search' }).click()
  await expect(page).toHaveURL(/operation=POST/)
  const results = page.getByTestId('trace-results')
  await expect(results.getByRole('row').nth(1)).toBeVisible()
  await screenshot(page, 'trace-search')

  // Not the newest trace: its last spans and logs may still be on their way.
  const found = results.getByRole('link', { name: /gateway: POST \/orders/ })
  await found.nth(Math.min(2, (await found.count()) - 1)).click()
  await expect(page).toHaveURL(/\/traces\/[0-9a-f]{32}/)
  const waterfall = page.getByTestId('waterfall')
  await expect(async () => {
    await page.reload()
    // The checkout crosses gateway → orders → payments, and logs on the way.
    for (const s of ['gateway', 'orders', 'payments']) await expect(waterfall).toContainText(s, { timeout: 2000 })
    await expect(page.getByTestId('trace-logs')).toContainText('order relayed', { timeout: 2000 })
  }).toPass({ timeout: 20_000 })
  expect(await waterfall.getByTestId('span-row').count()).toBeGreaterThan(2)

  await waterfall.getByTestId('span-row').first().click()
  const details = page.getByTestId('span-details')
  await expect(details).toBeVisible()
  await expect(details.getByTestId('span-attributes')).toContainText('http.')
  await expect(details.getByTestId('span-resource')).toContainText('service.name')
  const metricsLink = details.getByRole('link', { name: /metrics at this moment/ })
  await expect(metricsLink).toHaveAttribute('href', /\/explore\?query=.*traces_span_metrics_calls_total/)

  const logs = page.getByTestId('trace-logs')
  await expect(logs.getByTestId('log-line').first()).toBeVisible()
  await expect(logs).toContainText('order relayed')
  await screenshot(page, 'trace-view')

  // The metrics link opens the explorer on that service around the span.
  await metricsLink.click()
  await expect(page).toHaveURL(/\/explore\?/)
  await expect(page.getByTestId('promql-input')).toHaveValue(/service_name="gateway"/)
})
