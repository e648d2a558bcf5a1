"""Forms built from JSON Schema (``form.js``): a schema and a value make a form, and reading
the form gives the value back, with the problems the reader made at their JSON paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from playwright.async_api import Page

from flowmesh_proto.entries import builtin_action_catalog, node_catalog
from tests.unit.console_js import call, console_modules

ENTRIES = msgspec.to_builtins([*node_catalog(), *builtin_action_catalog()])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page() -> AsyncIterator[Page]:
    async for found in console_modules():
        yield found


async def read(page: Page, schema: dict[str, Any], value: Any, edit: str = "") -> dict[str, Any]:
    """Build the form of ``schema`` prefilled with ``value``, run ``edit`` (JavaScript with
    ``form``, ``field(path)`` -> the control at a path, ``fill(node, text)``), read it."""
    body = """(m, arg) => {
      const form = m.buildForm(arg.schema, arg.value, {connectors: ['slack', 'github']});
      document.body.replaceChildren(form.node);
      form.read();  // places the paths on the fields
      const wrapper = (path) => [...form.node.querySelectorAll('.form-field')]
        .find((f) => f.dataset.path === path);
      const field = (path) => wrapper(path).querySelector('input, select, textarea');
      const fill = (node, text) => { node.value = text; };
      const steps = {EDITS};
      steps(form, field, fill, wrapper);
      const read = form.read();
      form.showProblems(read.problems);
      const shown = [...form.node.querySelectorAll('.field-problem')].map(
        (p) => [p.closest('.form-field').dataset.path, p.textContent]);
      return {...read, shown};
    }""".replace("{EDITS}", f"(form, field, fill, wrapper) => {{ {edit} }}")
    found: dict[str, Any] = await call(page, "form.js", body, {"schema": schema, "value": value})
    return found


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
async def test_every_catalog_entry_reads_back_its_example(
    page: Page, entry: dict[str, Any]
) -> None:
    got = await read(page, entry["parameters_schema"], entry["example"])
    assert got["problems"] == []
    assert got["value"] == entry["example"]


ACTION: dict[str, Any] = {
    "title": "SlackPostParameters",
    "type": "object",
    "properties": {
        "action": {"const": "slack.post_message", "description": "The action."},
        "connector": {"type": "string", "description": "A connector of the tenant."},
        "version": {
            "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
            "default": None,
        },
        "input": {
            "type": "object",
            "properties": {
                "channel": {"type": "string", "minLength": 1, "description": "Where to post."},
                "text": {"type": "string"},
                "mode": {"enum": ["plain", "markdown"], "default": "plain"},
                "urgent": {"type": "boolean", "default": False},
                "retries": {"type": "integer", "default": 3},
                "ratio": {"type": "number"},
                "thread": {
                    "anyOf": [
                        {
                            "type": "object",
                            "properties": {
                                "ts": {"type": "string", "pattern": "^[0-9.]+$"},
                                "broadcast": {"type": "boolean"},
                            },
                            "required": ["ts"],
                        },
                        {"type": "null"},
                    ],
                    "default": None,
                },
                "blocks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"kind": {"type": "string"}, "text": {"type": "string"}},
                        "required": ["kind"],
                    },
                },
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {},
                "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "required": ["channel", "text"],
        },
    },
    "required": ["action", "connector", "input"],
    "additionalProperties": False,
}

ACTION_VALUE: dict[str, Any] = {
    "action": "slack.post_message",
    "connector": "slack",
    "version": 2,
    "input": {
        "channel": "#ops",
        "text": "Order {{ trigger.data.id }} shipped",
        "mode": "markdown",
        "urgent": True,
        "retries": 5,
        "ratio": 0.5,
        "thread": {"ts": "123.45", "broadcast": True},
        "blocks": [{"kind": "section", "text": "hi"}, {"kind": "divider"}],
        "metadata": {"X-Trace": "{{ run.id }}", "team": "ops"},
        "extra": {"a": [1, None, "x"]},
        "either": 7,
    },
}


async def test_an_action_schema_round_trips(page: Page) -> None:
    got = await read(page, ACTION, ACTION_VALUE)
    assert got["problems"] == []
    assert got["value"] == ACTION_VALUE


async def test_the_form_shows_each_kind_of_field(page: Page) -> None:
    kinds = await call(
        page,
        "form.js",
        """(m, arg) => {
          const form = m.buildForm(arg.schema, arg.value, {connectors: ['slack', 'github']});
          document.body.replaceChildren(form.node);
          form.read();
          const at = (path) => [...form.node.querySelectorAll('.form-field')]
            .find((f) => f.dataset.path === path);
          return {
            action: [at('action').dataset.kind, at('action').querySelector('code').textContent],
            connector: at('connector').querySelector('input').list.id,
            options: [...form.node.querySelectorAll('datalist option')].map((o) => o.value),
            mode: at('input.mode').querySelector('select').selectedOptions[0].textContent,
            urgent: at('input.urgent').querySelector('input').type,
            thread: at('input.thread').tagName,
            blocks: at('input.blocks').querySelectorAll('.form-row').length,
            metadata: at('input.metadata').dataset.kind,
            extra: at('input.extra').querySelector('textarea') !== null,
            either: at('input.either').dataset.kind,
            required: [...form.node.querySelectorAll('abbr.required')].length,
            description: at('input.channel').querySelector('.field-description').textContent,
          };
        }""",
        {"schema": ACTION, "value": ACTION_VALUE},
    )
    assert kinds == {
        "action": ["const", "slack.post_message"],
        "connector": "form-connectors",
        "options": ["slack", "github"],
        "mode": "markdown",
        "urgent": "checkbox",
        "thread": "FIELDSET",
        "blocks": 2,
        "metadata": "map",
        "extra": True,
        "either": "json",
        "required": 8,  # action, connector, input, channel, text, thread.ts, blocks[i].kind
        "description": "Where to post.",
    }


async def test_a_template_is_accepted_in_an_integer_field(page: Page) -> None:
    got = await read(
        page,
        ACTION,
        ACTION_VALUE,
        "fill(field('input.retries'), '{{ vars.retries }}');fill(field('input.ratio'), 'half');",
    )
    assert got["value"]["input"]["retries"] == "{{ vars.retries }}"
    assert got["problems"] == [
        {"path": "input.ratio", "message": "must be a number (or a {{ template }})"}
    ]
    assert got["shown"] == [["input.ratio", "must be a number (or a {{ template }})"]]
    # A template given as the value makes a text field of any type, read back as given.
    value = {**ACTION_VALUE, "input": {**ACTION_VALUE["input"], "urgent": "{{ vars.urgent }}"}}
    assert (await read(page, ACTION, value))["value"] == value


async def test_missing_required_fields_are_reported_at_their_paths(page: Page) -> None:
    got = await read(
        page,
        ACTION,
        ACTION_VALUE,
        "fill(field('input.channel'), ''); fill(field('connector'), '');"
        "fill(field('input.thread.ts'), '');",
    )
    assert got["problems"] == [
        {"path": "connector", "message": "is required"},
        {"path": "input.channel", "message": "is required"},
        {"path": "input.thread.ts", "message": "is required"},
    ]
    assert sorted(got["shown"]) == [
        ["connector", "is required"],
        ["input.channel", "is required"],
        ["input.thread.ts", "is required"],
    ]


async def test_bad_json_is_reported_at_its_path(page: Page) -> None:
    got = await read(page, ACTION, ACTION_VALUE, "fill(field('input.extra'), '{\"a\": ');")
    [problem] = got["problems"]
    assert problem["path"] == "input.extra"
    assert problem["message"].startswith("is not valid JSON")
    # A text that is no JSON but a template is the template, as a string.
    got = await read(page, ACTION, ACTION_VALUE, "fill(field('input.extra'), '{{ vars.x }}');")
    assert got["problems"] == [] and got["value"]["input"]["extra"] == "{{ vars.x }}"


async def test_empty_optional_fields_are_left_out(page: Page) -> None:
    minimal: dict[str, Any] = {
        "action": "slack.post_message",
        "connector": "slack",
        "input": {"channel": "#ops", "text": "hi"},
    }
    assert (await read(page, ACTION, minimal))["value"] == minimal
    # Emptied by the reader: gone from the value, not sent as "" or null.
    got = await read(
        page,
        ACTION,
        ACTION_VALUE,
        "fill(field('version'), ''); fill(field('input.retries'), '');"
        "fill(field('input.ratio'), ''); fill(field('input.extra'), '  ');"
        "fill(field('input.either'), ''); fill(field('input.mode'), '');"
        "field('input.urgent').checked = false;"
        "fill(field('input.thread.ts'), ''); field('input.thread.broadcast').checked = false;"
        "for (const b of form.node.querySelectorAll('.remove-row')) b.click();",
    )
    assert got["problems"] == []
    assert got["value"] == {
        **minimal,
        "input": {**minimal["input"], "text": ACTION_VALUE["input"]["text"]},
    }


async def test_rows_are_added_and_map_entries_keep_their_names(page: Page) -> None:
    schema = {
        "type": "object",
        "properties": {
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "codes": {"type": "array", "items": {"type": "integer"}},
        },
    }
    got = await read(
        page,
        schema,
        {"headers": {"Authorization": "Bearer x"}},
        "form.node.querySelectorAll('.add-row')[1].click();"
        "form.node.querySelectorAll('.add-row')[1].click();"
        "const codes = wrapper('codes').querySelectorAll('.form-row input');"
        "fill(codes[0], '200'); fill(codes[1], 'x');"
        "form.node.querySelectorAll('.add-row')[0].click();"
        "const keys = form.node.querySelectorAll('.map-key');"
        "fill(keys[1], 'Authorization');",
    )
    assert got["value"] == {"headers": {"Authorization": "Bearer x"}, "codes": [200]}
    assert got["problems"] == [
        {"path": "headers.Authorization", "message": "is given twice"},
        {"path": "codes[1]", "message": "must be an integer (or a {{ template }})"},
    ]


async def test_data_stays_text(page: Page) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    schema = {
        "type": "object",
        "properties": {hostile: {"type": "string", "description": hostile, "enum": [hostile]}},
    }
    images = await call(
        page,
        "form.js",
        """(m, arg) => {
          const form = m.buildForm(arg.schema, {[arg.hostile]: arg.hostile});
          document.body.replaceChildren(form.node);
          return [document.querySelectorAll('img').length, form.read().value];
        }""",
        {"schema": schema, "hostile": hostile},
    )
    assert images == [0, {hostile: hostile}]


async def test_the_schemas_bounds_are_checked_but_templates_left_to_the_server(
    page: Page,
) -> None:
    got = await read(
        page,
        ACTION,
        ACTION_VALUE,
        "fill(field('version'), '0'); fill(field('input.thread.ts'), 'abc');",
    )
    assert got["problems"] == [
        {"path": "version", "message": "must be at least 1"},
        {"path": "input.thread.ts", "message": "must match ^[0-9.]+$"},
    ]
    got = await read(page, ACTION, ACTION_VALUE, "fill(field('input.thread.ts'), '{{ x }}');")
    assert got["problems"] == [] and got["value"]["input"]["thread"]["ts"] == "{{ x }}"


async def test_an_object_needing_one_of_two_members_is_a_form_not_a_json_field(
    page: Page,
) -> None:
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string"}, "blocks": {"type": "array"}},
        "anyOf": [{"required": ["text"]}, {"required": ["blocks"]}],
    }
    got = await read(page, schema, {"text": "hi"}, "fill(field('text'), 'changed');")
    assert got["problems"] == [] and got["value"] == {"text": "changed"}
