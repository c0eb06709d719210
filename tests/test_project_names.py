"""One rule for project names: what the server accepts, and the name the CLI makes from a folder."""

from __future__ import annotations

import pytest

from napari_vlsm.core.errors import VLSMError
from napari_vlsm.core.project_names import check_project_name, is_project_name, project_slug
from napari_vlsm.server.host import check_project


@pytest.mark.parametrize("folder, name", [
    ("Lebér", "leber"), ("Liver", "liver"), ("kidney scans (2024)", "kidney-scans-2024"),
    ("_private", "private"), ("...", "project"), ("日本", "project"), ("a.b_c-d", "a.b_c-d"),
    ("Ünïcödé  Mäps!", "unicode-maps"), ("x" * 80, "x" * 64),
])
def test_a_folder_name_becomes_a_name_the_server_accepts(folder, name):
    assert project_slug(folder) == name
    assert check_project(project_slug(folder)) == name  # the server's own check


@pytest.mark.parametrize("bad", ["", "lebér", "-x", ".x", "a/b", "a b", "x" * 65, None])
def test_the_server_refuses_other_names_with_one_message(bad):
    assert not is_project_name(bad)
    with pytest.raises(VLSMError, match="is not valid; use 1-64 letters"):
        check_project(bad)


def test_valid_names_are_their_own_slug_and_the_server_check_is_the_rule():
    assert check_project is check_project_name
    for name in ("default", "Liver-2024", "a.b_c-d", "9lives"):
        assert is_project_name(name) and check_project_name(name) == name
