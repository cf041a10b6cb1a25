// The cluster page: the test server runs single-node, so its real answer
// is the 404 shown as a note; a cluster's answer, and a failing one, are
// served canned.
import type { Page, Route } from '@playwright/test'
import { expect, test } from './fixtures'

const XSS_ID = '<img src=x onerror="window.__xss=7">'

async function serve(page: Page, status: number, body: unknown) {
  await page.route(/\/api\/v1\/cluster$/, (route: Route) =>
    route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) }),
  )
}

// Chromium logs every 4xx/5xx fetch; these are the answers under test.
function dropStatusErrors(consoleErrors: string[], code: number) {
  const rest = consoleErrors.filter((e) => !new RegExp(`status of ${code}`).test(e))
  consoleErrors.splice(0, consoleErrors.length, ...rest)
}

test('cluster page: a single node says so, as a note rather than an error', async ({ page, consoleErrors }) => {
  await page.goto('/cluster')
  await expect(page.getByRole('link', { name: 'Cluster' })).toHaveAttribute('aria-current', 'page')
  await expect(page.getByTestId('cluster-single-node')).toContainText('vigil runs single-node')
  await expect(page.getByRole('alert')).toHaveCount(0)
  await expect(page.getByTestId('cluster-members')).toHaveCount(0)
  dropStatusErrors(consoleErrors, 404)
})

test('cluster page: leader, term and members, every value as text', async ({ page }) => {
  const contact = new Date(Date.now() - 1200).toISOString()
  await serve(page, 200, {
    status: 'success',
    data: {
      leader: 'n2',
      term: 7,
      members: [
        { id: 'n1', address: '10.0.0.1:7946', state: 'follower', voter: true, commit_index: 41, applied_index: 40, last_contact: contact },
        { id: 'n2', address: '10.0.0.2:7946', state: 'leader', voter: true, commit_index: 0, applied_index: 0, last_contact: null },
        { id: XSS_ID, address: '10.0.0.3:7946', state: 'unknown', voter: false, commit_index: 0, applied_index: 0, last_contact: null },
      ],
    },
  })
  await page.goto('/cluster')
  await expect(page.getByTestId('cluster-leader')).toHaveText('n2')
  await expect(page.getByTestId('cluster-term')).toHaveText('7')
  const rows = page.getByTestId('cluster-member')
  await expect(rows).toHaveCount(3)
  await expect(rows.nth(0).locator('td')).toHaveText(['n1', '10.0.0.1:7946', 'follower', 'yes', '41', '40', /ago$/])
  await expect(rows.nth(1).locator('td')).toHaveText(['n2', '10.0.0.2:7946', 'leader', 'yes', '–', '–', '–'])
  await expect(rows.nth(2).locator('td').first()).toHaveText(XSS_ID)
  await expect(rows.nth(2)).toHaveAttribute('data-state', 'unknown')
  expect(await page.locator('img[src="x"]').count()).toBe(0)
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined()
  await expect(page.getByTestId('cluster-single-node')).toHaveCount(0)
})

test('cluster page: a node that cannot read its membership shows the error', async ({ page, consoleErrors }) => {
  await serve(page, 503, { status: 'error', errorType: 'unavailable', error: 'consensus: node is closed' })
  await page.goto('/cluster')
  await expect(page.getByRole('alert')).toContainText('consensus: node is closed')
  await expect(page.getByTestId('cluster-single-node')).toHaveCount(0)
  dropStatusErrors(consoleErrors, 503)
})
