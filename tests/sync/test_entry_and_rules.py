from __future__ import annotations

import pytest

from peerlog import DivergenceError, Entry, Expunged
from peerlog.sync.rules import SlotAction, reconcile
from tests.helpers import entry, erased, peer


def test_digest_is_32_bytes_and_covers_ts_and_payload() -> None:
    base = Entry(1, b"x")
    assert len(base.digest) == 32
    assert base.digest == Entry(1, b"x").digest
    assert base.digest != Entry(2, b"x").digest
    assert base.digest != Entry(1, b"y").digest


def test_entries_are_immutable() -> None:
    with pytest.raises(AttributeError):
        entry(0).ts = 5  # type: ignore[misc]


def test_entry_never_equals_a_marker() -> None:
    marker: object = erased(0)
    assert entry(0) != marker


@pytest.mark.parametrize(
    ("held", "offered", "action"),
    [
        (entry(0), entry(0), SlotAction.KEEP),
        (entry(0), erased(0), SlotAction.ERASE),
        (erased(0), entry(0), SlotAction.KEEP),
        (erased(0), erased(0), SlotAction.KEEP),
    ],
    ids=["same-entry", "matching-marker", "original-of-erased", "same-marker"],
)
def test_reconcile_accepts_consistent_offers(held: Entry | Expunged,
                                             offered: Entry | Expunged,
                                             action: SlotAction) -> None:
    assert reconcile(peer(1), 0, held, offered) is action


@pytest.mark.parametrize(
    ("held", "offered"),
    [(entry(0), entry(1)), (entry(0), erased(1)), (erased(0), entry(1)),
     (erased(0), erased(1))],
    ids=["other-entry", "other-marker", "other-entry-for-erased", "other-marker-for-erased"],
)
def test_reconcile_reports_divergence(held: Entry | Expunged, offered: Entry | Expunged) -> None:
    with pytest.raises(DivergenceError, match="index 3"):
        reconcile(peer(1), 3, held, offered)


def test_bad_arguments_are_value_errors_and_codec_errors() -> None:
    from uuid import UUID

    from peerlog import CodecError, EntryTooLargeError, InvalidArgumentError
    from peerlog.sync.batch import check_batch_start, check_payload_size, read_bound

    with pytest.raises(ValueError, match="non-negative"):
        read_bound(-1, None, 10)
    with pytest.raises(InvalidArgumentError):
        check_batch_start("not a uuid", 0)
    with pytest.raises(CodecError):
        check_batch_start(UUID(int=1), -5)
    with pytest.raises(ValueError, match="limited to"):
        check_payload_size(bytes(5 << 20))
    assert issubclass(EntryTooLargeError, InvalidArgumentError)
