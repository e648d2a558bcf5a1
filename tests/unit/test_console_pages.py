"""The console's files (DESIGN section 14): every file shipped is served, and the code puts
data in the page only as text and keeps nothing in browser storage."""

from __future__ import annotations

import re
from importlib import resources

from flowmesh_gateway.pages import CONTENT_SECURITY_POLICY, FILES, read_files

FOLDER = resources.files("flowmesh_gateway") / "console_ui"
#: What would turn data into markup, run it, or keep it in the browser.
FORBIDDEN = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|"
    r"localStorage|sessionStorage|indexedDB|document\.cookie|setAttribute\(\s*[\"']on"
)


def test_every_file_of_the_folder_is_served_and_nothing_else() -> None:
    shipped = {entry.name for entry in FOLDER.iterdir() if entry.is_file()}
    assert shipped == set(FILES)
    assert all(body for body in read_files().values())


def test_the_code_never_writes_markup_nor_uses_browser_storage() -> None:
    for name in FILES:
        text = (FOLDER / name).read_text(encoding="utf-8")
        assert not FORBIDDEN.search(text), name


def test_the_page_loads_its_script_from_a_file_and_the_policy_forbids_inline() -> None:
    index = (FOLDER / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", index, flags=re.S)
    assert scripts == [""]  # one script, by src, with nothing inline
    assert "style=" not in index and " on" not in re.sub(r"<script.*?</script>", "", index)
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
