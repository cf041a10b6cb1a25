import { expect, screenshot, test } from './fixtures'

test('service map shows the demo call graph', async ({ page }) => {
  await expect(async () => {
    await page.goto('/map')
    await expect(page.getByTestId('servicemap-edge').nth(2)).toBeVisible({ timeout: 2000 })
  }).toPass({ timeout: 45_000 })
  const edges = page.getByTestId('servicemap-edge')
  const titles = await edges.locator('title').allTextContents()
  for (const e of ['gateway → catalog', 'gateway → orders', 'orders → payments'])
    expect(titles.some((t) => t.startsWith(e)), `edge ${e} in ${titles}`).toBe(true)
  await expect(edges.first()).toContainText('/s')
  await screenshot(page, 'servicemap')
  await page.getByTestId('servicemap-node').filter({ hasText: 'orders' }).click()
  await expect(page).toHaveURL(/\/services\/orders/)
})
