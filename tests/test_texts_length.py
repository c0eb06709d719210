"""Whole messages: napari's toast shows about 40 characters of a notification's first line, so every
text's first line fits in texts.HEAD_MAX (docs/development.md, "first line <= 40 characters").

Three rules, each simple enough to follow when adding a text:
1. every string in texts.py (except TIP_* tooltips and BANNER_* dock lines) has a first line of at
   most HEAD_MAX characters (placeholders counted as written);
2. every show_info / show_warning / show_error call in napari_vlsm passes a texts.* function's
   result (toast, info, user_error, ...), and a literal head written there fits too;
3. toast() itself keeps any message's first line within HEAD_MAX and loses none of its words.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from napari_vlsm._napari import texts

PACKAGE = Path(texts.__file__).resolve().parents[1]
SHOW = {"show_info", "show_warning", "show_error"}
BUILDERS = {"toast", "info", "user_error", "unexpected_error", "finetune_closed"}
EXEMPT = ("TIP_", "BANNER_")


def _texts_strings():
    for name, value in vars(texts).items():
        if name.isupper() and not name.startswith(EXEMPT):
            values = value.values() if isinstance(value, dict) else [value]
            for text in values:
                if isinstance(text, str):
                    yield name, text


def test_napari_shows_40_characters_and_the_rule_says_so():
    assert texts.HEAD_MAX == 40
    rules = (PACKAGE.parent / "docs" / "development.md").read_text()
    assert "first line <= 40 characters" in rules


@pytest.mark.parametrize("name,text", list(_texts_strings()), ids=[n for n, _ in _texts_strings()])
def test_every_text_starts_with_a_line_that_fits(name, text):
    head = text.split("\n", 1)[0]
    assert len(head) <= texts.HEAD_MAX, f"texts.{name}: first line {len(head)} > {texts.HEAD_MAX}: {head!r}"


def _show_calls():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name in SHOW:
                    yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", node


def _literal_head(node) -> str | None:
    """The first line of a literal or f-string argument, placeholders as ``{}``; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split("\n", 1)[0]
    if isinstance(node, ast.JoinedStr):
        parts = [p.value if isinstance(p, ast.Constant) else "{}" for p in node.values]
        return "".join(parts).split("\n", 1)[0]
    return None


def test_every_notification_is_built_by_texts_and_its_written_head_fits():
    calls = list(_show_calls())
    assert len(calls) >= 10  # the scan finds the call sites (the reader, the launcher, the workers...)
    for where, call in calls:
        arg = call.args[0] if call.args else None
        built = (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
                 and isinstance(arg.func.value, ast.Name) and arg.func.value.id == "texts"
                 and arg.func.attr in BUILDERS)
        assert built, f"{where}: pass texts.toast(...) (or another texts builder) to {ast.unparse(call.func)}"
        head = _literal_head(arg.args[0]) if arg.args else None
        if head is not None:
            assert len(head) <= texts.HEAD_MAX, f"{where}: first line {len(head)} > {texts.HEAD_MAX}: {head!r}"


LONG = [
    "cannot create the correction store at /home/someone/a/very/long/path/to/projects/default: "
    "Permission denied; choose another project folder",
    "x" * 90,
    "out of CPU memory while encoding the image; close other programs or lower the batch size",
    "Settings file damaged: using defaults\nsettings file /tmp/a/b/c/d/e/f/dock.json is damaged (JSONDecodeError)",
    "A head that is much too long for the toast and has no separator at all in it\nwith details",
    "napari-vlsm: napari-vlsm: short",
]


@pytest.mark.parametrize("message", LONG)
@pytest.mark.parametrize("what", ["", "segmenting all slices of a long stack"])
def test_toast_keeps_the_first_line_short_and_every_word(message, what):
    out = texts.toast(message, what)
    head, _, rest = out.partition("\n")
    assert 0 < len(head) <= texts.HEAD_MAX, out
    assert rest.startswith("napari-vlsm:") and out.count("napari-vlsm:") == 1
    words = message.replace("napari-vlsm:", "").split()
    assert all(word in out for word in words), out
    if what:
        assert what in rest


def test_notification_builders_fit_with_long_values():
    err = OSError("a very long low-level description of what went wrong " * 3)
    for out in (texts.user_error("segmenting", err), texts.unexpected_error("segmenting all slices", err),
                texts.finetune_closed(None), texts.toast(texts.NO_MASK.format(target="left kidney cyst" * 3,
                                                                            image="scan")),
                texts.toast(texts.BUSY.format(job="finetuning"))):
        assert len(out.split("\n", 1)[0]) <= texts.HEAD_MAX, out
