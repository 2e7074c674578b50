from __future__ import annotations

import json

import pytest

from peerlog import CodecError, PeerCursors
from tests.helpers import peer

A, B, C = peer(1), peer(2), peer(3)


def test_of_is_zero_for_an_absent_peer() -> None:
    assert PeerCursors({A: 4}).of(A) == 4
    assert PeerCursors({A: 4}).of(B) == 0


def test_merged_is_pointwise_max_and_a_new_object() -> None:
    left = PeerCursors({A: 4, B: 1})
    out = left.merged({B: 3, C: 2, A: 1})
    assert out == {A: 4, B: 3, C: 2}
    assert isinstance(out, PeerCursors)
    assert left == {A: 4, B: 1}


def test_gaps_are_half_open_ranges_where_ahead_is_past() -> None:
    here = PeerCursors({A: 4, B: 5})
    assert here.gaps({A: 10, B: 5, C: 2}) == {A: (4, 10), C: (0, 2)}
    assert here.gaps({A: 1}) == {}


def test_json_round_trip_uses_string_keys() -> None:
    cursors = PeerCursors({A: 4, B: 0})
    text = json.dumps(cursors.to_json())
    assert str(A) in text
    assert PeerCursors.from_json(json.loads(text)) == cursors


@pytest.mark.parametrize(
    "bad", [[], {"not-a-uuid": 1}, {str(A): -1}, {str(A): "3"}, {str(A): 1.5}, None],
)
def test_from_json_rejects_malformed_input(bad: object) -> None:
    with pytest.raises(CodecError):
        PeerCursors.from_json(bad)
