"""Object-storage buckets as the place devices sync through (S3 and compatibles, GCS,
Azure, a local path): `BucketLog`, the bucket twin of a shared folder's `FileLog`."""

from peerlog.bucket.log import BucketLog
from peerlog.bucket.store import BucketStore

__all__ = ["BucketLog", "BucketStore"]
