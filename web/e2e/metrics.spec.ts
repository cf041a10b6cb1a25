import { expect, screenshot, test } from './fixtures'

test('metrics explorer: completion, chart and table', async ({ page }) => {
  await page.goto('/explore')
  const input = page.getByTestId('promql-input')
  await input.click()
  await input.pressSequentially('u')
  const suggestions = page.getByTestId('promql-suggestions')
  await expect(suggestions.getByRole('option', { name: /^up metric$/ })).toBeVisible()
  await input.pressSequentially('p{jo')
  await expect(suggestions.getByRole('option', { name: /^job/ })).toBeVisible()
  await page.keyboard.press('Tab')
  await expect(input).toHaveValue('up{job')
  await input.pressSequentially('="')
  await expect(suggestions.getByRole('option', { name: /^shop/ })).toBeVisible()
  await suggestions.getByRole('option', { name: /^shop/ }).click()
  await expect(input).toHaveValue('up{job="shop"')
  await input.pressSequentially('}')
  await page.keyboard.press('Escape')
  await page.keyboard.press('Enter')
  await expect(page).toHaveURL(/query=up/)

  await expect(page.getByTestId('metrics-chart').locator('canvas').first()).toBeVisible()
  const table = page.getByTestId('metrics-table')
  await expect(table).toContainText('up{')
  await expect(table).toContainText('job="shop"')
  expect(await table.getByRole('row').count()).toBeGreaterThanOrEqual(5) // header + 4 demo services
  await screenshot(page, 'metrics')
})

test('metrics explorer: a bad query is reported once', async ({ page, consoleErrors }) => {
  await page.goto('/explore?query=' + encodeURIComponent('sum(rate(up[5m])'))
  const errors = page.locator('.state.error')
  await expect(errors).toHaveCount(1)
  await expect(errors).toContainText('Could not load the query: ')
  await expect(errors).toContainText('parse error')
  await expect(page.getByTestId('metrics-chart')).toHaveCount(0)
  // The browser reports each 400 answer on the console: expected here.
  const rest = consoleErrors.filter((e) => !/status of 400/.test(e))
  consoleErrors.splice(0, consoleErrors.length, ...rest)
})

test('metrics explorer: the chart legend shows values and 24-hour times, not "--"', async ({ page }) => {
  await page.goto('/explore?from=now-15m&query=' + encodeURIComponent('sum(up)'))
  const chart = page.getByTestId('metrics-chart')
  await expect(chart.locator('canvas').first()).toBeVisible({ timeout: 30_000 })
  const legend = chart.locator('.u-legend')
  // Away from the chart: the latest values, no placeholder dashes.
  await expect(legend).toContainText('latest values')
  await expect(legend).not.toContainText('--')
  await expect(legend.locator('.u-series').nth(1).locator('.u-value')).toHaveText(/^\d+$/)
  // Over it: the hovered time in 24-hour form.
  const box = (await chart.locator('.u-over').boundingBox())!
  await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2)
  await expect(legend.locator('.u-series').first().locator('.u-value')).toHaveText(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/)
  await expect(legend).not.toContainText(/am|pm/i)
})
