// Data is text: span names, attributes and log bodies that look like HTML are
// shown literally and never run.
import { randomBytes } from 'node:crypto'
import { expect, screenshot, test } from './fixtures'

const IMG = '<img src=x onerror="window.__xss=1">'
const SCRIPT = '<script>window.__xss=2</script>'

const str = (key: string, v: string) => ({ key, value: { stringValue: v } })

async function post(path: string, body: unknown) {
  const r = await fetch(`${process.env.VIGIL_OTLP_HTTP}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(r.status, await r.text()).toBe(200)
}

async function expectInert(page: import('@playwright/test').Page) {
  expect(await page.locator('img[src="x"]').count()).toBe(0)
  expect(await page.locator('main script').count()).toBe(0)
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined()
}

test('HTML in spans and logs is shown as text, never run', async ({ page, request }) => {
  const traceId = randomBytes(16).toString('hex')
  const spanId = randomBytes(8).toString('hex')
  const token = `xsscheck${randomBytes(4).toString('hex')}`
  const now = BigInt(Date.now()) * 1_000_000n
  const resource = { attributes: [str('service.name', 'xss-check'), str('host.name', SCRIPT)] }
  await post('/v1/traces', {
    resourceSpans: [
      {
        resource,
        scopeSpans: [
          {
            scope: { name: 'e2e' },
            spans: [
              {
                traceId,
                spanId,
                name: IMG,
                kind: 2,
                startTimeUnixNano: String(now - 50_000_000n),
                endTimeUnixNano: String(now),
                attributes: [str('payload.img', IMG), str('payload.script', SCRIPT)],
                events: [{ timeUnixNano: String(now - 10_000_000n), name: SCRIPT, attributes: [str('detail', IMG)] }],
                status: { code: 2, message: SCRIPT },
              },
            ],
          },
        ],
      },
    ],
  })
  await post('/v1/logs', {
    resourceLogs: [
      {
        resource,
        scopeLogs: [
          {
            scope: { name: 'e2e' },
            logRecords: [
              {
                timeUnixNano: String(now),
                severityNumber: 17,
                severityText: 'ERROR',
                body: { stringValue: `${token} ${IMG} ${SCRIPT}` },
                attributes: [str('payload.img', IMG)],
                traceId,
                spanId,
              },
            ],
          },
        ],
      },
    ],
  })
  // Wait until both are stored, without making the page see a 404.
  await expect
    .poll(async () => (await request.get(`/api/traces/${traceId}`)).status(), { timeout: 30_000 })
    .toBe(200)
  await expect
    .poll(async () => ((await (await request.get(`/api/logs?q=${token}`)).json()).data ?? []).length, { timeout: 30_000 })
    .toBe(1)

  // The trace: span name in the waterfall, attributes, resource, status and events in the details.
  await page.goto(`/traces/${traceId}`)
  await expect(page.getByTestId('waterfall').getByText(IMG, { exact: true })).toBeVisible()
  await page.getByTestId('span-row').first().click()
  const details = page.getByTestId('span-details')
  await expect(details.getByTestId('span-attributes').getByText(IMG, { exact: true })).toBeVisible()
  await expect(details.getByTestId('span-attributes').getByText(SCRIPT, { exact: true })).toBeVisible()
  await expect(details.getByTestId('span-resource').getByText(SCRIPT, { exact: true })).toBeVisible()
  await expect(details.getByTestId('span-status')).toHaveText(`ERROR: ${SCRIPT}`)
  await expect(page.getByTestId('trace-logs')).toContainText(`${token} ${IMG} ${SCRIPT}`)
  await expectInert(page)
  await screenshot(page, 'xss-trace')

  // The log explorer.
  await page.goto(`/logs?q=${token}`)
  const line = page.getByTestId('log-results').getByTestId('log-line')
  await expect(line).toHaveCount(1)
  await expect(line.locator('.body')).toHaveText(`${token} ${IMG} ${SCRIPT}`)
  await line.locator('.body').click()
  await expect(page.locator('.logline-details').getByText(IMG, { exact: true })).toBeVisible()
  await expectInert(page)
  await screenshot(page, 'xss-logs')
})
