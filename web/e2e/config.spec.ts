import { expect, screenshot, test } from './fixtures'

// Each test writes its own items, so that the tests (and reruns against a
// running vigil) do not see each other's versions.
const unique = () => `e2e${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`

test('config page: an item, a put, a gray and its abort, a rollback', async ({ page, request, consoleErrors }) => {
  const group = unique()
  const item = `e2e-ui/${group}/settings`
  const put = await request.put(`/api/v1/config/${item}`, {
    data: 'timeout: 2s\nflag: false\n',
    headers: { 'Content-Type': 'application/yaml', 'X-Vigil-Author': 'ann', 'X-Vigil-Message': 'first' },
  })
  expect(put.ok()).toBe(true)

  await page.goto('/config')
  const row = page.locator(`[data-testid=config-item-row][data-item="${item}"]`)
  await expect(row).toContainText('yaml')
  await row.getByRole('link', { name: 'settings' }).click()
  await expect(page).toHaveURL(/item=e2e-ui/)
  const detail = page.getByTestId('config-item')
  await expect(detail.getByTestId('config-formal-version')).toHaveText('1')
  await expect(detail.getByTestId('config-formal-content')).toHaveText('timeout: 2s\nflag: false\n')
  const history = page.getByTestId('config-history').getByTestId('config-version')
  await expect(history).toHaveCount(1)

  // A put: a new formal version, first in the history.
  await page.getByLabel('author').fill('bob')
  await page.getByLabel('message', { exact: true }).fill('slower gateway')
  const putForm = page.getByTestId('config-put')
  await putForm.getByLabel('content', { exact: true }).fill('timeout: 5s\nflag: false\n')
  await putForm.getByRole('button', { name: 'Put' }).click()
  await expect(page.getByTestId('config-notice')).toContainText('Put: version 2')
  await expect(detail.getByTestId('config-formal-version')).toHaveText('2')
  await expect(history).toHaveCount(2)
  await expect(history.first()).toHaveAttribute('data-version', '2')
  await expect(history.first()).toContainText('formal')
  await expect(history.first()).toContainText('bob')
  await expect(history.first()).toContainText('slower gateway')
  // The message was this write's: the next one starts without it.
  await expect(page.getByLabel('message', { exact: true })).toHaveValue('')

  // A gray on a label, shown with its target and content, then aborted.
  const grayForm = page.getByTestId('config-gray-form')
  await grayForm.getByLabel('gray match').fill('zone=eu-1')
  await grayForm.getByLabel('gray content').fill('timeout: 9s\nflag: true\n')
  await grayForm.getByRole('button', { name: 'Start gray' }).click()
  const gray = page.getByTestId('config-gray')
  await expect(gray.getByTestId('config-gray-match')).toHaveText('labels zone=eu-1')
  await expect(gray.getByTestId('config-gray-content')).toHaveText('timeout: 9s\nflag: true\n')
  await expect(history.first()).toContainText('active gray')
  await expect(row).toContainText('v3: labels zone=eu-1')
  await screenshot(page, 'config-gray')
  await gray.getByRole('button', { name: 'Abort' }).click()
  await expect(page.getByTestId('config-notice')).toContainText('Abort: version 2')
  await expect(gray).toHaveCount(0)
  await expect(history.first()).not.toContainText('active gray')
  await expect(detail.getByTestId('config-formal-version')).toHaveText('2')
  // The aborted gray was never everyone's version: nothing rolls back to it.
  await expect(page.getByRole('button', { name: 'roll back to version 3' })).toHaveCount(0)
  await expect(page.getByRole('button', { name: 'roll back to version 1' })).toBeVisible()

  // A rollback to version 1: its content as version 4.
  await page.getByRole('button', { name: 'roll back to version 1' }).click()
  await expect(page.getByTestId('config-notice')).toContainText('Rollback to version 1: version 4')
  await expect(detail.getByTestId('config-formal-version')).toHaveText('4')
  await expect(detail.getByTestId('config-formal-content')).toHaveText('timeout: 2s\nflag: false\n')
  await expect(history).toHaveCount(4)
  await expect(history.first()).toContainText('rollback of 1')
  await expect(row.locator('td').nth(3)).toHaveText('4')
  await screenshot(page, 'config')

  // A refused write shows the API's reason, and changes nothing.
  await putForm.getByTestId('config-content-type').selectOption('json')
  await putForm.getByLabel('content', { exact: true }).fill('{"timeout":')
  await putForm.getByRole('button', { name: 'Put' }).click()
  await expect(page.getByTestId('config-error')).toContainText('400: invalid: content is not JSON')
  await expect(history).toHaveCount(4)
  // The browser reports the 400 answer on the console: expected here.
  const rest = consoleErrors.filter((e) => !/status of 400/.test(e))
  consoleErrors.splice(0, consoleErrors.length, ...rest)
})

test('config page: a new item from the page, a percentage gray with a guard, promoted', async ({ page }) => {
  const item = `e2e-ui/${unique()}/flags`
  await page.goto('/config')
  const form = page.getByTestId('config-new-item')
  await form.getByLabel('new item', { exact: true }).fill(item)
  await form.getByTestId('config-content-type').selectOption('json')
  await form.getByLabel('new item content').fill('{"new_checkout": false}')
  await form.getByRole('button', { name: 'Put' }).click()
  await expect(page).toHaveURL(new RegExp(`item=${encodeURIComponent(item)}`))
  await expect(page.getByTestId('config-formal-version')).toHaveText('1')
  await expect(page.getByTestId('config-formal')).toContainText('json')

  const grayForm = page.getByTestId('config-gray-form')
  await grayForm.getByLabel('gray target').selectOption('percent')
  await grayForm.getByLabel('gray match').fill('10')
  await grayForm.getByLabel('gray guard', { exact: true }).selectOption('promql')
  await grayForm.getByLabel('gray guard value').fill('vector(1) > 2')
  await grayForm.getByLabel('gray content').fill('{"new_checkout": true}')
  await grayForm.getByRole('button', { name: 'Start gray' }).click()
  const gray = page.getByTestId('config-gray')
  await expect(gray.getByTestId('config-gray-match')).toHaveText('10% of instances')
  await expect(gray).toContainText('{"promql":"vector(1) > 2"}')
  await gray.getByRole('button', { name: 'Promote' }).click()
  await expect(page.getByTestId('config-notice')).toContainText('Promote: version 3')
  await expect(gray).toHaveCount(0)
  await expect(page.getByTestId('config-formal-content')).toHaveText('{"new_checkout": true}')
  await expect(page.getByTestId('config-history').getByTestId('config-version').first()).toContainText('promote of 2')
})

test('config page: a write the server refuses for want of the config role shows its reason', async ({ page, request, consoleErrors }) => {
  const item = `e2e-ui/${unique()}/limits`
  for (const body of ['a', 'b']) expect((await request.put(`/api/v1/config/${item}`, { data: body, headers: { 'Content-Type': 'text/plain' } })).ok()).toBe(true)
  // This server runs without authentication: answer the rollback as one
  // with it answers a credential without the config role (internal/auth).
  const reason = `this credential lacks the config (or admin) role needed for POST /api/v1/config/${item}/rollback`
  await page.route('**/rollback?version=1', (route) =>
    route.fulfill({ status: 403, contentType: 'application/json', body: JSON.stringify({ status: 'error', errorType: 'forbidden', error: reason }) }),
  )
  await page.goto(`/config?item=${encodeURIComponent(item)}`)
  await page.getByRole('button', { name: 'roll back to version 1' }).click()
  await expect(page.getByTestId('config-error')).toHaveText(`Rollback to version 1 refused: 403: ${reason}`)
  await expect(page.getByTestId('config-formal-version')).toHaveText('2')
  const rest = consoleErrors.filter((e) => !/status of 403/.test(e))
  consoleErrors.splice(0, consoleErrors.length, ...rest)
})

test('config page: content is shown as text, never as HTML', async ({ page, request }) => {
  const item = `e2e-ui/${unique()}/xss`
  const html = '<img src=x onerror="window.__xss=20"><script>window.__xss=21</script>'
  expect((await request.put(`/api/v1/config/${item}`, { data: html, headers: { 'Content-Type': 'text/plain', 'X-Vigil-Author': html } })).ok()).toBe(true)
  await page.goto(`/config?item=${encodeURIComponent(item)}`)
  await expect(page.getByTestId('config-formal-content')).toHaveText(html)
  await expect(page.getByTestId('config-history')).toContainText(html)
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined()
})

test('change markers: a config write appears on its service\'s RED charts and on the explorer chart', async ({ page, request }) => {
  // An item named after the gateway (its group): the gateway's page marks
  // it, the catalog's does not.
  const id = unique()
  const item = `e2e-markers/gateway/${id}`
  const other = `e2e-markers/catalog/${id}`
  for (const it of [item, other]) {
    const put = await request.put(`/api/v1/config/${it}`, {
      data: '{"new_checkout": true}',
      headers: { 'Content-Type': 'application/json', 'X-Vigil-Author': 'erin' },
    })
    expect(put.ok()).toBe(true)
  }
  const marker = (where: string, it = item) => page.getByTestId(where).locator(`[data-testid=change-marker][title*="${it}"]`)

  await page.goto('/services/gateway?from=now-15m')
  for (const chart of ['red-chart-rate', 'red-chart-errors', 'red-chart-p99']) {
    await expect(marker(chart)).toHaveCount(1)
  }
  await expect(marker('red-chart-rate')).toHaveAttribute('title', new RegExp(`config put ${item} v1 by erin`))
  await expect(marker('red-chart-rate')).toHaveAttribute('data-kind', 'config')
  await expect(page.getByTestId('change-list')).toContainText(`config put ${item} v1 by erin`)
  await screenshot(page, 'service-change-markers')

  await expect(marker('red-chart-rate', other)).toHaveCount(0)

  await page.goto('/services/catalog?from=now-15m')
  await expect(marker('red-chart-rate', other)).toHaveCount(1)
  await expect(marker('red-chart-rate')).toHaveCount(0)

  await page.goto('/explore?from=now-15m&query=' + encodeURIComponent('sum(up)'))
  await expect(marker('metrics-chart')).toHaveCount(1)
  await expect(page.getByTestId('metrics-chart').getByTestId('change-list')).toContainText(item)
  await screenshot(page, 'explore-change-markers')
})
