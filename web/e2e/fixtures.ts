// Shared test fixtures: the vigil under test as baseURL, and a page that
// fails the test on any console error, uncaught exception or CSP violation.
import { test as base, expect, type Page } from '@playwright/test'
import { resolve } from 'node:path'

export const test = base.extend<{ consoleErrors: string[] }>({
  baseURL: async ({}, use) => {
    await use(process.env.VIGIL_URL)
  },
  consoleErrors: async ({}, use) => {
    await use([])
  },
  page: async ({ page, consoleErrors }, use) => {
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`${m.text()} (${m.location().url})`)
    })
    page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`))
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) =>
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`),
      )
    })
    await use(page)
    expect(consoleErrors, 'console errors and CSP violations').toEqual([])
  },
})

export { expect }

export async function screenshot(page: Page, name: string) {
  await page.screenshot({ path: resolve(import.meta.dirname, 'screenshots', `${name}.png`), fullPage: true })
}

// The demo shop's services (vigil demo).
export const DEMO_SERVICES = ['gateway', 'catalog', 'orders', 'payments']
