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
