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
