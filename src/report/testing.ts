/** Test helpers of the pages (report, dashboard): headless Chromium, the Debian package, driven by playwright-core. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** The `skip` of a browser test: false where Chromium is installed, and always in CI. */
export const chromiumSkip: string | false = !existsSync(CHROMIUM) && !process.env.CI ? `skipped: ${CHROMIUM} is absent (install the Debian chromium package; in CI this test always runs)` : false;

/** A fresh headless Chromium with one page whose console errors and uncaught exceptions are collected in `errors`. */
export async function launchChromium(): Promise<{ context: BrowserContext; page: Page; errors: string[]; close: () => Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'selfdev-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
  });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return {
    context, page, errors,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
