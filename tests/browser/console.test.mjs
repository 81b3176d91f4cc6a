// Drives restop's operator console (/ui) in headless Chromium, the way an operator would.
//
// tests/it/ops/console.rs starts restop with seeded executions and runs this script with:
//   RESTOP_URL         restop's base URL, e.g. http://127.0.0.1:41234
//   RESTOP_TOKEN       a valid API token
//   RESTOP_CHROMIUM    the Chromium executable (Debian's /usr/bin/chromium by default)
//   RESTOP_SCREENSHOTS where to save a screenshot of each view, at 1280 and 360 px wide
//   RESTOP_SCENARIO    JSON naming the seeded resources (see console.rs)
// It prints one line per test and ends with "N passed, N failed"; the exit code is 1 when
// any test failed.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set: tests/it/ops/console.rs runs this script`);
    process.exit(2);
  }
  return value;
}

const base = required('RESTOP_URL').replace(/\/$/, '');
const token = required('RESTOP_TOKEN');
const shots = required('RESTOP_SCREENSHOTS');
const scenario = JSON.parse(required('RESTOP_SCENARIO'));
const executablePath = process.env.RESTOP_CHROMIUM || '/usr/bin/chromium';
const origin = new URL(base).origin;
const WIDE = { width: 1280, height: 900 };
const NARROW = { width: 360, height: 780 };

mkdirSync(shots, { recursive: true });
// Screenshots of failures are only for the run that took them.
for (const name of readdirSync(shots)) if (name.startsWith('failed-')) rmSync(join(shots, name));

// ---- a tiny runner ----------------------------------------------------------------------

const results = [];

async function test(name, body) {
  const started = Date.now();
  try {
    await body();
    results.push(true);
    console.log(`ok ${results.length} - ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push(false);
    console.log(`not ok ${results.length} - ${name}`);
    console.log(String(error.stack || error).replace(/^/gm, '    '));
    await page.screenshot({ path: join(shots, `failed-${results.length}.png`), fullPage: true }).catch(() => {});
  }
}

/** Retries `check` until it stops throwing, or throws its last error after `timeout` ms. */
async function eventually(check, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

// ---- the browser ------------------------------------------------------------------------

const profile = mkdtempSync(join(tmpdir(), 'restop-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: WIDE,
  // A zone far from UTC, so that local times and their UTC titles differ.
  timezoneId: 'America/New_York',
  locale: 'en-US',
});
context.setDefaultTimeout(10000);
const page = context.pages()[0] ?? await context.newPage();

const requested = [];
context.on('request', (request) => requested.push(request.url()));
const problems = [];
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
page.on('console', (message) => {
  if (message.type() !== 'error') return;
  // The browser logs every refused API call; those are part of the scenario.
  if (/Failed to load resource: the server responded with a status of (400|401|409)/.test(message.text())) return;
  problems.push(`console: ${message.text()}`);
});

// ---- helpers ------------------------------------------------------------------------------

// The rows of a view's list (the summary's savings table is not one).
const rows = () => page.locator('table.list:not(.savings) tbody tr');
const heading = (name) => page.getByRole('heading', { level: 1, name });
const nav = (name) => page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name, exact: true });

/** Full-page screenshots at 1280 and 360 px, checking that nothing is wider than 360 px. */
async function snap(name) {
  await page.screenshot({ path: join(shots, `${name}-1280.png`), fullPage: true });
  await page.setViewportSize(NARROW);
  try {
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= NARROW.width, `${name}: the page is ${wide} px wide at 360 px`);
    await page.screenshot({ path: join(shots, `${name}-360.png`), fullPage: true });
  } finally {
    await page.setViewportSize(WIDE);
  }
}

/** Every form control has a label (or an aria-label), every button a text. */
async function assertLabelled() {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => !el.closest('[hidden]'))
    .filter((el) => (el.tagName === 'BUTTON'
      ? !el.textContent.trim() && !el.getAttribute('aria-label')
      : el.labels.length === 0 && !el.getAttribute('aria-label')))
    .map((el) => el.outerHTML));
  assert.deepEqual(unlabelled, [], 'controls without a label');
}

async function openExecution(resource) {
  await page.goto(`${base}/ui#/executions?resource=${encodeURIComponent(resource)}`);
  await rows().first().getByRole('link', { name: resource }).click();
  await heading(new RegExp(`^${resource}`)).waitFor();
}

// ---- the scenario ---------------------------------------------------------------------------

await test('/ redirects to the console, which asks for a token', async () => {
  const response = await page.goto(`${base}/`);
  assert.equal(new URL(page.url()).pathname, '/ui');
  const headers = response.headers();
  assert.match(headers['content-security-policy'], /default-src 'self'/);
  assert.equal(headers['x-frame-options'], 'DENY');
  await heading('Sign in to restop').waitFor();
  assert.ok(await page.getByLabel('API token', { exact: true }).isVisible());
  assert.ok(await nav('Executions').isHidden(), 'no navigation before sign-in');
  await assertLabelled();
  await snap('sign-in');
});

await test('a wrong token shows the sign-in error', async () => {
  await page.getByLabel('API token', { exact: true }).fill('wrong-token-0123456789');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await eventually(async () => assert.match(await page.locator('#sign-in-error').textContent(), /refused this token/));
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await snap('sign-in-error');
});

await test('signing in shows the summary and the executions, newest first', async () => {
  await page.getByLabel('API token', { exact: true }).fill(token);
  await page.getByLabel('API token', { exact: true }).press('Enter');
  await heading('Executions').waitFor();
  await eventually(async () => assert.equal(await rows().count(), scenario.seeded));
  const summary = page.getByRole('region', { name: 'Summary' });
  await summary.getByText(`${scenario.seeded} runs`).first().waitFor();
  await summary.getByRole('link', { name: scenario.failed }).waitFor();
  assert.match(await summary.textContent(), /Active now\s*1/);
  // Held databases, and until when (a date's hold ends at the next midnight, UTC).
  const held = summary.getByRole('list', { name: 'Held databases' });
  await held.getByRole('link', { name: scenario.held }).waitFor();
  assert.equal(await held.locator('time').getAttribute('datetime'), '2999-02-01T00:00:00Z');
  // The token is kept in this tab only, never in a URL.
  assert.equal(await page.evaluate(() => sessionStorage.getItem('restop.api-token')), token);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.ok(!page.url().includes(token));
  // Times are local, with UTC on hover.
  const time = rows().first().locator('time');
  assert.match(await time.getAttribute('title'), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  assert.notEqual(await time.textContent(), await time.getAttribute('title'));
  // The newest first: the last seeded run heads the list.
  assert.match(await rows().first().textContent(), new RegExp(scenario.newest));
  await assertLabelled();
  await snap('executions');
});

await test('the summary shows what restop saved, in total and per database', async () => {
  const savings = page.getByRole('region', { name: 'Savings, last 30 days' });
  await savings.waitFor();
  const table = savings.locator('table.savings');
  // What saved something: the forced start restop stopped, the two runs an operator
  // started that stopped their database, and the held one; not the runs that stopped nothing.
  const databases = [scenario.forced_start, ...scenario.stopped, scenario.held];
  await eventually(async () => assert.equal(await table.locator('tbody tr').count(), new Set(databases).size));
  const row = (name) => table.locator('tbody tr').filter({ has: page.getByRole('link', { name, exact: true }) });
  const cells = async (name) => (await row(name).locator('td').allTextContents()).map((t) => t.trim());
  // Database, Size, Forced starts, Stopped, Held, Still ran, Kept stopped, Cost avoided.
  const forced = await cells(scenario.forced_start);
  assert.deepEqual(forced.slice(1, 6), ['db.t4g.micro', '1', '1', '0', '10 min 0 s'], 'a stopped forced start is billed 10 minutes');
  assert.match(forced[6], /^\d+ s$|^\d+ min \d+ s$/);
  assert.match(forced[7], /^\$\d+\.\d\d$/, 'priced from RESTOP_PRICES');
  const cluster = await cells(scenario.cluster);
  assert.deepEqual([cluster[1], cluster[7]], ['2 instances', 'no estimate']);
  assert.match(await row(scenario.cluster).locator('td').last().locator('span').getAttribute('title'), /Aurora cluster of 2 instances/);
  const held = await cells(scenario.held);
  assert.deepEqual(held.slice(2, 5), ['0', '0', '1']);
  // The totals, and what the estimate leaves out.
  const text = (await savings.locator('.totals p').allTextContents()).join(' ');
  assert.match(text, /Forced starts 1 all runs: 3 stopped · 1 held/);
  assert.match(text, /Forced starts still ran 10 min 0 s/);
  assert.match(text, /Cost avoided \$\d+\.\d\d/);
  assert.match(await savings.locator('.basis').textContent(), /1 left out.*Reserved Instances, Savings Plans/);
  // A database's row leads to its executions.
  await row(scenario.forced_start).getByRole('link', { name: scenario.forced_start }).click();
  await eventually(async () => assert.equal(await rows().count(), 1));
  assert.match(page.url(), /resource=arn%3Aaws%3Ards%3Aus-east-1%3A123456789012%3Adb%3Aledger/);
  await page.goto(`${base}/ui#/executions`);
  await heading('Executions').waitFor();
  await savings.locator('table.savings').waitFor();
  await snap('savings');
});

await test('the console is keyboard reachable', async () => {
  // A view starts with its heading focused: Shift+Tab leads back to the navigation, Tab
  // on to the view's controls.
  const reached = [];
  for (const [key, presses] of [['Shift+Tab', 8], ['Tab', 40]]) {
    await page.locator('h1').focus();
    for (let i = 0; i < presses; i += 1) {
      await page.keyboard.press(key);
      reached.push(await page.evaluate(() => {
        const el = document.activeElement;
        return (el.labels?.[0]?.textContent || el.getAttribute('aria-label') || el.textContent).trim();
      }));
    }
  }
  for (const expected of ['Skip to content', 'Executions', 'Trigger', 'Messages', 'Subscriptions',
    'Sign out', 'Start a run', 'Status', 'Outcome', 'Resource', 'Apply']) {
    assert.ok(reached.includes(expected), `the keyboard never reached ${expected}: ${reached.join(' | ')}`);
  }
});

await test('filters narrow the list and live in the URL', async () => {
  await page.getByLabel('Status', { exact: true }).selectOption('failed');
  await eventually(async () => {
    assert.equal(await rows().count(), 1);
    assert.match(await rows().first().textContent(), new RegExp(scenario.failed));
  });
  assert.match(page.url(), /status=failed/);
  assert.equal(await page.evaluate(() => document.activeElement.name), 'status', 'focus stays on the filter');
  await snap('executions-filtered');

  await page.getByRole('button', { name: 'Clear' }).click();
  await page.getByLabel('Outcome', { exact: true }).selectOption('stopped');
  await eventually(async () => assert.equal(await rows().count(), scenario.stopped.length));
  for (const resource of scenario.stopped) await rows().getByRole('link', { name: resource }).waitFor();

  await page.getByRole('button', { name: 'Clear' }).click();
  await page.getByLabel('Resource', { exact: true }).fill(scenario.not_protected);
  await page.getByLabel('Resource', { exact: true }).press('Enter');
  await eventually(async () => {
    assert.equal(await rows().count(), 1);
    assert.match(await rows().first().textContent(), /not protected/);
  });

  // A time range that ends before the first run shows none.
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.getByLabel('To', { exact: true }).fill('2020-01-01T00:00');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByText('No executions match these filters.').waitFor();
  assert.match(page.url(), /until=2020-01-01T\d\d%3A00%3A00.000Z/);
});

await test('an execution shows all its fields and its steps as a timeline', async () => {
  await openExecution(scenario.stopped[0]);
  const steps = page.locator('ol.timeline > li');
  assert.ok(await steps.count() >= 3, 'at least the tag check, the stop and the wait for stopped');
  const timeline = await page.locator('ol.timeline').textContent();
  assert.match(timeline, /check protection/);
  assert.match(timeline, /RDS: available/);
  assert.match(timeline, /RDS: stopped/);
  const fields = await page.locator('dl.fields').first().textContent();
  assert.match(fields, new RegExp(`arn:aws:rds:us-east-1:123456789012:db:${scenario.stopped[0]}`));
  assert.match(fields, /Deadline/);
  assert.ok(await page.getByRole('heading', { name: 'Notification' }).isVisible());
  assert.ok(await page.getByRole('button', { name: /Cancel run/ }).isHidden(), 'no Cancel on a finished run');
  await snap('execution');

  await openExecution(scenario.failed);
  assert.match(await page.locator('.reason-line').textContent(), /storage-full/);
  await snap('execution-failed');
});

await test('the trigger form shows the API\'s errors, and a dry run appears in the list', async () => {
  await nav('Trigger').click();
  await heading('Start a run').waitFor();
  await assertLabelled();
  await page.getByLabel('DB instance identifier', { exact: true }).check();
  await page.getByLabel('Identifier', { exact: true }).fill('bad--name');
  await page.getByLabel('Region', { exact: true }).fill('us-east-1');
  await page.getByRole('button', { name: 'Start run', exact: true }).click();
  await eventually(async () => assert.match(await page.locator('#trigger-error').textContent(), /invalid request: .*consecutive hyphens/));

  await page.getByLabel('Skip the tag check', { exact: true }).check();
  assert.ok(await page.locator('.warning.armed').isVisible(), 'the warning stands out');
  await page.getByRole('button', { name: 'Start run without tag check' }).waitFor();
  await snap('trigger');
  await page.getByLabel('Skip the tag check', { exact: true }).uncheck();

  await page.getByLabel('Identifier', { exact: true }).fill(scenario.dry_run_target);
  await page.getByLabel(/^Dry run/).check();
  await page.getByRole('button', { name: 'Start run', exact: true }).click();
  await heading(new RegExp(`^${scenario.dry_run_target}`)).waitFor();
  await page.getByText(`Started a dry run for ${scenario.dry_run_target}.`).waitFor();
  // The page follows the run until it ends.
  await page.locator('h1 .badge', { hasText: 'dry run' }).first().waitFor({ timeout: 20000 });
  await eventually(async () => assert.match(await page.locator('h1').textContent(), /succeeded/), 20000);

  await nav('Executions').click();
  await rows().first().getByRole('link', { name: scenario.dry_run_target }).waitFor();
});

await test('an active run can be cancelled, after confirming', async () => {
  await page.goto(`${base}/ui#/executions?status=running`);
  await rows().getByRole('link', { name: scenario.active }).click();
  await heading(new RegExp(`^${scenario.active}`)).waitFor();
  // Polling the starting database: one timeline entry with a count.
  await eventually(async () => assert.match(await page.locator('.badge.repeats').first().textContent(), /× \d+/), 15000);
  await page.getByRole('button', { name: 'Cancel run…' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await snap('cancel-confirm');
  await dialog.getByRole('button', { name: 'Keep running' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.match(await page.locator('h1').textContent(), /running/);

  await page.getByRole('button', { name: 'Cancel run…' }).click();
  await dialog.getByRole('button', { name: 'Cancel run', exact: true }).click();
  await page.getByText(`The run for ${scenario.active} was cancelled.`).waitFor();
  await eventually(async () => assert.match(await page.locator('h1').textContent(), /cancelled/));
  assert.ok(await page.getByRole('button', { name: 'Cancel run…' }).isHidden());
  assert.match(await page.locator('ol.timeline').textContent(), /cancelled by an operator/);
  await snap('execution-cancelled');
});

await test('messages and subscriptions list what SNS delivered', async () => {
  await nav('Messages').click();
  await heading('Messages').waitFor();
  await eventually(async () => assert.equal(await rows().count(), 2));
  await assertLabelled();
  await snap('messages');
  await page.getByLabel('Type', { exact: true }).selectOption('SubscriptionConfirmation');
  await eventually(async () => assert.equal(await rows().count(), 1));
  await page.getByLabel('Type', { exact: true }).selectOption('Notification');
  await eventually(async () => assert.match(await rows().first().textContent(), /RDS-EVENT-0154/));
  await rows().first().getByRole('link').first().click();
  await heading(/Notification/).waitFor();
  assert.match(await page.locator('pre.body').textContent(), /RDS-EVENT-0154/);
  await snap('message');

  await nav('Subscriptions').click();
  await heading('Subscriptions').waitFor();
  await eventually(async () => assert.equal(await rows().count(), 1));
  assert.match(await rows().first().textContent(), /confirmed/);
  await snap('subscriptions');
});

await test('signing out forgets the token, and a refused token returns to sign-in', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in to restop').waitFor();
  await page.getByText('Signed out.').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('restop.api-token')), null);
  await page.reload();
  await heading('Sign in to restop').waitFor();
  await snap('signed-out');

  // A token that stops working mid-session (say, removed from RESTOP_API_TOKENS).
  await page.evaluate(() => sessionStorage.setItem('restop.api-token', 'revoked-token-0123456789'));
  await page.goto(`${base}/ui#/messages`);
  await heading('Sign in to restop').waitFor();
  await eventually(async () => assert.match(await page.locator('#sign-in-error').textContent(), /401/));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('restop.api-token')), null);
});

await test('the console made only same-origin requests, and the browser reported no error', async () => {
  assert.ok(requested.length > 10, `only ${requested.length} requests were seen`);
  const foreign = requested.filter((url) => new URL(url).origin !== origin);
  assert.deepEqual(foreign, [], 'requests to other origins');
  assert.deepEqual(requested.filter((url) => url.includes(token)), [], 'the token in a URL');
  assert.deepEqual(problems, []);
});

await context.close();
rmSync(profile, { recursive: true, force: true });

const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
