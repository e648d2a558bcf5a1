"""The console's admin pages (``admin.js``, ``keys.js``, ``secrets.js``, ``audit.js``): how a
refusal is told, the two-step confirmation, and that every value is drawn as text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Page

from tests.unit.console_js import call, console_modules

MARKUP = "<img src=x onerror=alert(1)>"
#: refusal(new ApiError(status, problem)) from admin.js, with api.js's ApiError.
REFUSAL = """async (m, [status, problem]) => {
  const { ApiError } = await import('./api.js');
  return m.refusal(new ApiError(status, problem, '3'));
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page() -> AsyncIterator[Page]:
    async for found in console_modules():
        yield found


async def test_a_refused_csrf_token_asks_to_reload_or_sign_in_again(page: Page) -> None:
    csrf = {"code": "CSRF_TOKEN_INVALID", "detail": "needs the X-CSRF-Token header"}
    told = await call(page, "admin.js", REFUSAL, [403, csrf])
    assert "security token (CSRF)" in told and "Reload the page" in told
    forbidden = {"code": "FORBIDDEN", "detail": "the role is too low"}
    assert "admin role" in await call(page, "admin.js", REFUSAL, [403, forbidden])
    limited = {"code": "RATE_LIMITED", "detail": "slow down"}
    assert (
        await call(page, "admin.js", REFUSAL, [429, limited])
        == "Too many requests: try again in 3 s."
    )
    other = {"code": "NOT_FOUND", "detail": "API key k was not found"}
    assert await call(page, "admin.js", REFUSAL, [404, other]) == "API key k was not found"
    assert "did not answer" in await call(page, "admin.js", "(m) => m.refusal(new Error('x'))")


async def test_a_problem_is_found_by_its_path(page: Page) -> None:
    found = await call(
        page,
        "admin.js",
        """async (m) => {
          const { ApiError } = await import('./api.js');
          const error = new ApiError(422, {code: 'VALIDATION_FAILED', errors: [
            {path: 'name', code: 'VALIDATION_FAILED', message: 'bad name'}]});
          return [m.problemAt(error, 'name'), m.problemAt(error, 'value'),
                  m.problemAt(new Error('x'), 'name')];
        }""",
    )
    assert found == ["bad name", None, None]


async def test_the_confirmation_asks_twice_and_can_be_cancelled(page: Page) -> None:
    seen = await call(
        page,
        "admin.js",
        """async (m) => {
          let done = 0;
          const node = m.confirmButton('Revoke', async () => { done += 1; }, {warning: 'sure?'});
          const labels = () => [...node.querySelectorAll('button')].map((b) => b.textContent);
          const steps = [labels()];
          node.querySelector('button').click();
          steps.push(labels(), node.querySelector('.warning').textContent);
          node.querySelector('.cancel').click();
          steps.push(labels(), done);
          node.querySelector('button').click();
          node.querySelector('.really').click();
          await new Promise((resolve) => setTimeout(resolve, 0));
          steps.push(done);
          return steps;
        }""",
    )
    assert seen == [
        ["Revoke"],
        ["Really revoke", "Cancel"],
        "sure?",
        ["Revoke"],
        0,
        1,
    ]


async def test_keys_secrets_and_audit_entries_are_drawn_as_text(page: Page) -> None:
    drawn = await call(
        page,
        "keys.js",
        """async (m, markup) => {
          const audit = await import('./audit.js');
          const secrets = await import('./secrets.js');
          const admin = await import('./admin.js');
          const keys = [
            {id: 'k1', name: markup, role: 'admin', created_at: '2026-01-01T00:00:00Z',
             created_by: 'key:t:k1', last_used_at: null, revoked_at: null},
            {id: 'k2', name: 'old', role: 'viewer', created_at: '2026-01-01T00:00:00Z',
             created_by: 'key:t:k1', last_used_at: null, revoked_at: '2026-01-02T00:00:00Z'},
          ];
          const table = m.keysTable({keys, tenant: 't', ownId: 'k1', onRevoke: () => null});
          const shown = m.shownKeyView({name: markup, role: 'viewer', key: 'fm_t_x'}, () => null);
          const log = audit.auditView({
            filters: {action: '', actor: '', target: ''},
            page: {items: [{id: 1, actor: 'key:t:k1', action: 'workflow.patch', target: markup,
                            outcome: 'success', request_id: 'r', detail: {tags: [markup]},
                            at: '2026-01-01T00:00:00Z'}], next_cursor: null, has_more: false},
            names: admin.keyNames('t', keys),
            onFilter: () => null, onNext: () => null, onPrevious: null,
          });
          const names = secrets.secretsTable({
            secrets: [{name: 'API_TOKEN', created_at: '2026-01-01T00:00:00Z',
                       updated_at: '2026-01-01T00:00:00Z'}],
            onReplace: () => null, onDelete: () => null,
          });
          const all = [table, shown, log, names];
          return {
            images: all.reduce((n, node) => n + node.querySelectorAll('img').length, 0),
            keyNames: [...table.querySelectorAll('td.name')].map((td) => td.textContent),
            createdBy: table.querySelector('td.created-by').textContent,
            revokeButtons: [...table.querySelectorAll('tr')]
              .map((tr) => tr.querySelectorAll('button').length),
            shownKey: shown.querySelector('#new-key').textContent,
            target: log.querySelector('td.target').textContent,
            targetHref: log.querySelector('td.target a').getAttribute('href'),
            actor: log.querySelector('td.actor .actor-name').textContent,
            detail: log.querySelector('td.detail').textContent,
            secret: names.querySelector('td.name').textContent,
          };
        }""",
        MARKUP,
    )
    assert drawn["images"] == 0
    assert drawn["keyNames"] == [MARKUP + "your session", "old"]
    assert drawn["createdBy"] == "key:t:k1" + MARKUP
    assert drawn["revokeButtons"] == [0, 1, 0]  # the head, a live key, a revoked key
    assert drawn["shownKey"] == "fm_t_x"
    assert drawn["target"] == MARKUP and drawn["actor"] == MARKUP
    assert drawn["targetHref"].startswith("#/admin/audit?target=%3Cimg")
    assert drawn["detail"] == '{"tags":["' + MARKUP + '"]}'
    assert drawn["secret"] == "API_TOKEN"
