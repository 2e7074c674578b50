"""The JSON parser every value goes through, and its fast paths."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerlog.state.ops import canonical_json, parse_json

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@given(JSON)
def test_a_canonical_value_parses_back_to_itself(value: Any) -> None:
    assert parse_json(canonical_json(value)) == value
    assert parse_json(canonical_json(value).decode()) == value


RAW = (st.binary(max_size=24) | st.text(max_size=24).map(str.encode)
       | st.from_regex(rb"-?[0-9]{1,20}", fullmatch=True)
       | st.from_regex(rb'"[ -~\x00\x7f-\xff]{0,8}"', fullmatch=True))


@given(RAW)
def test_the_fast_paths_accept_exactly_what_the_strict_decoder_accepts(raw: bytes) -> None:
    def strict(data: bytes) -> Any:
        return json.loads(data.decode(), parse_constant=_refuse, parse_float=_finite)

    try:
        expected: Any = strict(raw)
    except (ValueError, RecursionError):
        with pytest.raises((ValueError, RecursionError)):
            parse_json(raw)
        return
    assert parse_json(raw) == expected


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


@pytest.mark.parametrize("text", [b" {\"a\": 1} ", b"\"a\"", b"-0", b"12", b"true", b"[]"])
def test_values_with_spaces_or_on_a_fast_path_parse_as_json_does(text: bytes) -> None:
    assert parse_json(text) == json.loads(text)
