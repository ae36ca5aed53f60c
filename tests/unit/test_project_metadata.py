"""vmdeck's metadata element: the project is read and set without touching the other fields (pure)."""

from __future__ import annotations

import pytest

from vmdeck.domxml.metadata import project_in, with_project
from vmdeck.errors import InvalidInput
from vmdeck.vm.project import check_project_name

RECORD = "<vm><template>tiny</template><owned-volume>/pool/a-vda.qcow2</owned-volume></vm>"


def test_set_read_and_drop_the_project_keeping_other_fields() -> None:
    assert project_in(None) is None and project_in(RECORD) is None
    tagged = with_project(RECORD, "acme")
    assert project_in(tagged) == "acme"
    assert "<template>tiny</template>" in tagged and "/pool/a-vda.qcow2" in tagged
    moved = with_project(tagged, "ops")
    assert project_in(moved) == "ops" and moved.count("<project>") == 1
    assert project_in(with_project(moved, None)) is None
    assert project_in(with_project(None, "fresh")) == "fresh"  # a VM vmdeck did not create gets a record


@pytest.mark.parametrize("name", ["acme", "a", "team-2", "x" * 63])
def test_good_project_names(name: str) -> None:
    assert check_project_name(name) == name


@pytest.mark.parametrize("name", ["", "-lead", "Upper", "acme\n", "a b", "x" * 64, "a_b", "../x"])
def test_bad_project_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_project_name(name)
