import { expect, screenshot, test } from './fixtures'

test('service map shows the demo call graph', async ({ page }) => {
  await expect(async () => {
    await page.goto('/map')
    // (A straight edge's own box has no height: wait for the labels.)
    await expect(page.getByTestId('servicemap-edge-label').nth(2)).toBeVisible({ timeout: 2000 })
  }).toPass({ timeout: 45_000 })
  const edges = page.getByTestId('servicemap-edge')
  const titles = await edges.locator('title').allTextContents()
  for (const e of ['gateway → catalog', 'gateway → orders', 'orders → payments'])
    expect(titles.some((t) => t.startsWith(e)), `edge ${e} in ${titles}`).toBe(true)
  await expect(page.getByTestId('servicemap-edge-label').first()).toContainText('/s')
  await screenshot(page, 'servicemap')
  await page.getByTestId('servicemap-node').filter({ hasText: 'orders' }).click()
  await expect(page).toHaveURL(/\/services\/orders/)
})

test('service map: no edge is drawn across an edge label', async ({ page }) => {
  await expect(async () => {
    await page.goto('/map')
    // (A straight edge's own box has no height: wait for the labels.)
    await expect(page.getByTestId('servicemap-edge-label').nth(2)).toBeVisible({ timeout: 2000 })
  }).toPass({ timeout: 45_000 })
  // Walk along every edge; wherever it passes inside a label's box, what
  // the browser shows there (elementFromPoint) must be the label, not a line.
  const crossings = await page.evaluate(() => {
    const svg = document.querySelector('[data-testid="servicemap"]') as SVGSVGElement
    const labels = [...svg.querySelectorAll('[data-testid="servicemap-edge-label"]')].map((g) => (g as SVGGElement).getBoundingClientRect())
    const out: string[] = []
    let checked = 0
    for (const path of svg.querySelectorAll<SVGPathElement>('[data-testid="servicemap-edge"] path')) {
      const len = path.getTotalLength()
      const ctm = path.getScreenCTM()!
      for (let d = 0; d <= len; d += 2) {
        const p = path.getPointAtLength(d).matrixTransform(ctm)
        const box = labels.find((r) => p.x > r.left + 1 && p.x < r.right - 1 && p.y > r.top + 1 && p.y < r.bottom - 1)
        if (!box) continue
        checked++
        const hit = document.elementFromPoint(p.x, p.y)
        if (hit?.closest('[data-testid="servicemap-edge"]')) out.push(`(${Math.round(p.x)},${Math.round(p.y)})`)
      }
    }
    return { out, checked }
  })
  expect(crossings.checked, 'edges pass through label boxes (dagre centres labels on edges)').toBeGreaterThan(0)
  expect(crossings.out, 'points where an edge shows through a label').toEqual([])
  // Rates are over the minutes since the server started, and labelled so.
  await expect(page.getByTestId('rate-coverage')).toContainText('where spans exist')
})
