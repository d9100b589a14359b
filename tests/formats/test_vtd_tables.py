"""VT-d entry formats: the fast int decoders agree with the construct specs, and known
entries from the lab vmcores (values printed by the independent roottable_check oracle
and by the kernel's own fault-dump layout) decode to the fields that oracle shows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumptool.errors import DecodeError, KdumptoolError
from kdumptool.formats import vtd_tables as vt

PAIRS = [
    (vt.decode_root_entry, vt.parse_root_entry, 16),
    (vt.decode_sm_root_entry, vt.parse_sm_root_entry, 16),
    (vt.decode_context_entry, vt.parse_context_entry, 16),
    (vt.decode_sm_context_entry, vt.parse_sm_context_entry, 32),
    (vt.decode_pasid_dir_entry, vt.parse_pasid_dir_entry, 8),
    (vt.decode_pasid_entry, vt.parse_pasid_entry, 64),
    (vt.decode_sl_pte, vt.parse_sl_pte, 8),
]


@pytest.mark.parametrize("fast,ref,size", PAIRS, ids=[p[0].__name__ for p in PAIRS])
@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=64, max_size=64))
def test_fast_decoder_matches_construct_spec(fast, ref, size, data):
    assert fast(data[:size]) == ref(data[:size])


def q(*vals: int) -> bytes:
    return b"".join(v.to_bytes(8, "little") for v in vals)


def test_single_bits_land_in_the_right_fields():
    # one bit at a time through every position: both decoders agree on which field moves
    for fast, ref, size in PAIRS:
        for bit in range(size * 8):
            data = (1 << bit).to_bytes(size, "little")
            assert fast(data) == ref(data), (fast.__name__, bit)


def test_legacy_context_entry_fields():
    # lab legacy_on 00:02.0: P=1 FPD=0 TT=0 AW=1 DID=4 SLPTPTR=0x2709000
    ce = vt.decode_context_entry(q(0x2709001, (4 << 8) | 1))
    assert (ce.present, ce.fpd, ce.tt, ce.aw, ce.did, ce.slptptr, ce.reserved) == (
        True, False, 0, 1, 4, 0x2709000, 0)
    assert ce.translation_type == "multi-level"
    assert vt.decode_context_entry(q(0x2709001 | 0x10, 1 << 7)).reserved == 0x10 | (1 << 7)


def test_scalable_entries_fields():
    sm = vt.decode_sm_root_entry(q(0x2488001, 0x24FA001))
    assert (sm.lp, sm.lctp, sm.up, sm.uctp, sm.reserved) == (True, 0x2488000, True, 0x24FA000, 0)
    ce = vt.decode_sm_context_entry(q(0x2416000 | (2 << 9) | 1, 0, 0, 0))
    assert (ce.present, ce.pdts, ce.pasid_dir_entries, ce.pasid_dir_ptr, ce.rid_pasid) == (
        True, 2, 512, 0x2416000, 0)
    pe = vt.decode_pasid_entry(q(0x24B3000 | (2 << 6) | (1 << 2) | 1, 4, 0, 0, 0, 0, 0, 0))
    assert (pe.present, pe.pgtt, pe.translation_type, pe.aw, pe.did, pe.slptptr) == (
        True, 2, "second-level", 1, 4, 0x24B3000)
    pte = vt.decode_sl_pte(q(0x3B6B003))
    assert (pte.r, pte.w, pte.ps, pte.addr) == (True, True, False, 0x3B6B000)


def test_rtaddr_mode():
    assert vt.decode_rtaddr(0x2411400).mode == "scalable"
    assert vt.decode_rtaddr(0x2411400).address == 0x2411000
    assert vt.decode_rtaddr(0x25D5000).mode == "legacy"
    assert vt.decode_rtaddr(0xC00).mode is None
    with pytest.raises(DecodeError):
        vt.decode_rtaddr(-1)


def test_short_input_is_a_decode_error():
    for fast, ref, size in PAIRS:
        with pytest.raises(DecodeError):
            fast(b"\0" * (size - 1))
        with pytest.raises(DecodeError):
            ref(b"\0" * (size - 1))


DRHD = """# dmar0 base=0xfed90000
VER       off=0x000 w=32 0x00000010
GSTS      off=0x01c w=32 0xC7000000
RTADDR    off=0x020 w=64 0x0000000002411400
# dmar1 base=0xfed91000
RTADDR    off=0x020 w=64 0x0000000000000000
"""


def test_saved_register_records():
    units = vt.parse_drhd_regs_text(DRHD)
    assert [(u.name, u.base, u.rtaddr, u.gsts) for u in units] == [
        ("dmar0", 0xFED90000, 0x2411400, 0xC7000000), ("dmar1", 0xFED91000, 0, None)]
    js = {"units": [{"name": "dmar0", "address": 0xFED90000, "read_error": None,
                     "registers": {"RTADDR": 0x25D5000, "GSTS": 0xC7000000}}]}
    assert vt.parse_vtd_registers_json(js)[0].rtaddr == 0x25D5000
    with pytest.raises(DecodeError):
        vt.parse_drhd_regs_text("nothing here")
    with pytest.raises(DecodeError):
        vt.parse_vtd_registers_json({"units": 3})


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["units", "registers", "RTADDR", "name"]), c, max_size=3),
    max_leaves=10)))
def test_fuzz_saved_records(obj):
    try:
        if isinstance(obj, str):
            vt.parse_drhd_regs_text(obj)
        else:
            vt.parse_vtd_registers_json(obj)
    except KdumptoolError:
        pass
