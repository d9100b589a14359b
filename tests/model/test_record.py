"""The record file's one schema (model/record.py): what ``kdumptool record`` wrote in the
lab reads back field for field, and a damaged record reads as absent fields, never a
traceback."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.model.record import RecordFile
from tests.conftest import FIXTURES

LAB_RECORDS = sorted(FIXTURES.glob("**/kdumptool-record.json"))


@pytest.mark.parametrize("path", LAB_RECORDS, ids=lambda p: p.parent.parent.parent.name)
def test_records_written_in_the_lab_read_back_field_for_field(path):
    data = json.loads(path.read_text())
    rec = RecordFile.from_json(data)
    assert rec is not None
    assert rec.to_json() == {k: v for k, v in data.items() if k != "schema_version"}
    assert rec.rtaddr_values == {k: int(v, 16) for k, v in data["rtaddr"].items() if v}


def test_there_are_lab_records():
    assert len(LAB_RECORDS) >= 2


def test_damaged_fields_read_as_absent():
    rec = RecordFile.from_json({"in_kdump_kernel": "yes", "rtaddr": {"dmar0": "garbage", "dmar1": "0x1000"},
                                "boot_record": {"path": 7}, "units": [1, {"name": "dmar0"}], "warnings": "x"})
    assert rec is not None and rec.in_kdump_kernel is False and rec.boot_record is None
    assert rec.rtaddr_values == {"dmar1": 0x1000} and rec.units == ({"name": "dmar0"},) and rec.warnings == ()
    assert RecordFile.from_json([1, 2]) is None


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=6),
                    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["kdumptool", "time", "kernel", "cmdline", "in_kdump_kernel", "rtaddr",
                                         "boot_record", "units", "warnings", "elapsed_s", "timings_s", "triage"]),
                       JSON, max_size=12))
def test_fuzz_reader(data):
    rec = RecordFile.from_json(data)
    assert rec is not None
    rec.rtaddr_values, rec.boot_rtaddr_values, rec.to_json()
