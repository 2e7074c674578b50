"""Every tunable default of peerlog, in one place.

Sizes, times and file names that more than one module uses, or that a user
may want to look up, live here; the modules that use them import them.  The
byte-format constants (docs/file-format.md) stay with the format, and the
size *policy* around these numbers is in `peerlog.sync.batch`.
"""

from __future__ import annotations

# -- sizes ---------------------------------------------------------------------------

DEFAULT_READ_BATCH = 10_000
"""Entries one `read_since` returns when no smaller ``limit`` is given."""
SQLITE_CACHE_KIB = 64 << 10
"""The most page cache one SQLite oplog connection keeps: 64 MiB (SQLite's default is
2 MiB).  A catch-up of a large state touches keys all over the state's b-tree; measured
on 200,000 changes to 100,000 keys, 14% faster than the default."""
BULK_THRESHOLD = 20_000
"""A catch-up of at least this many entries is applied in a bulk (`SqliteOplog.bulk`)."""
BULK_COMMIT_ENTRIES = 100_000
"""A bulk commits, durably, after this many new entries (and at its end)."""
DEFAULT_APPLY_BATCH = 5_000
"""Entries a driver reads per round trip before applying them."""
MAX_ENTRY_BYTES = 4 << 20
"""The largest payload a device may write: 4 MiB."""
MAX_BATCH_BYTES = 8 << 20
"""The most payload bytes one batch carries: 8 MiB (at least one entry always)."""

SNAPSHOT_EVERY = 100_000
"""A device syncing through a folder publishes a state snapshot (and compacts its own
log there) once the folder's newest snapshot is this many entries behind what it holds."""
BOOTSTRAP_MIN = 10_000
"""A device loads a snapshot instead of replaying once the snapshot covers at least this
many entries it lacks (or entries it lacks were compacted away)."""

# -- time ----------------------------------------------------------------------------

SAFETY_ROUND = 30.0
"""Seconds after which a live sync runs a round even if no watch woke it."""
BACKOFF_FIRST = 0.5
"""Seconds before the first retry while offline ..."""
BACKOFF_CAP = 30.0
"""... doubling up to this."""
MAX_RETRY_AFTER = 60.0
"""The longest a relay's ``Retry-After`` is honoured in total before giving up."""
SQLITE_POLL_INTERVAL = 0.1
"""Seconds between checks for other processes' commits while someone watches."""
FOLDER_POLL_INTERVAL = 0.5
"""Seconds between scans of a shared folder where file-system events fail."""
FOLDER_RESCAN_INTERVAL = 5.0
"""Seconds between safety rescans of a watched folder (some sync tools drop events)."""
BUCKET_POLL_INTERVAL = 2.0
"""Seconds between listings of a bucket right after a change (docs/guide.md)..."""
BUCKET_POLL_MAX = 60.0
"""... doubling while nothing changes, up to this: an idle device lists a bucket about
once a minute (one request per device's log, plus one)."""
BUCKET_SAFETY_ROUND = 600.0
"""Seconds between sync rounds with a bucket when its watch reports nothing."""
BUCKET_FRESH = 0.5
"""Seconds a bucket listing is reused by reads inside one round (cursors always list)."""
MAX_SKEW_MS = 60_000
"""How far ahead of this device's clock another device's entry may be stamped.

A device's state applies an entry further ahead only once its own clock is
within this of it (`DeferredError`), and its clock never follows one further.
"""

RETENTION_MS = 180 * 86_400_000
"""A device that said nothing in the folder for this long (180 days) no longer holds
compaction back; when it returns it starts from a snapshot."""

# -- the relay -----------------------------------------------------------------------

RELAY_PORT = 8470
RELAY_HEADER_TIMEOUT = 10.0
RELAY_BODY_TIMEOUT = 60.0
RELAY_KEEP_ALIVE = 5.0
RELAY_MAX_CONNECTIONS = 1_000
RELAY_RATE = 200.0
"""Requests per second per token (bursts of twice as many)."""

# -- file names ----------------------------------------------------------------------

DATABASE_FILE = "device.sqlite"
"""A device's database inside its home."""
SYNC_FILE = "sync.json"
"""Where a device syncs (and its relay token), inside its home."""
TOKENS_FILE = "peerlog-tokens.json"
"""A relay's token hashes, by default in the directory `peerlog serve` runs in."""
