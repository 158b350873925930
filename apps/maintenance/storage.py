"""The backup bucket: a multipart writer with a bounded buffer, a streaming reader, listing.

boto3 takes credentials from its usual chain and the endpoint from `AWS_ENDPOINT_URL` (an
S3-compatible service, or moto in the tests), as every AWS client in Autoglue does.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from django.conf import settings

from apps.core import metrics

MIB = 1024 * 1024
# S3 allows 10,000 parts; growing the part size every 1,000 parts keeps any dump below it.
PARTS_PER_STEP = 1000


class StorageError(Exception):
    """The bucket refused or lost an upload or a download (message has no credentials)."""


def s3_client() -> Any:
    kwargs: dict[str, Any] = {
        # Checksums only where S3 requires them: a payload checksum would be computed over each
        # part again (the object's SHA-256 and the GCM tags already protect it end to end).
        "config": Config(
            retries={"max_attempts": 5, "mode": "standard"},
            request_checksum_calculation="when_required",
        ),
    }
    if settings.BACKUP_S3_REGION:
        kwargs["region_name"] = settings.BACKUP_S3_REGION
    return metrics.instrument_aws(boto3.client("s3", **kwargs), "s3")


def bucket() -> str:
    if not settings.BACKUP_S3_BUCKET:
        raise StorageError("BACKUP_S3_BUCKET is not set")
    return settings.BACKUP_S3_BUCKET


class MultipartWriter:
    """Buffers at most one part and uploads it as the next part of a multipart upload."""

    def __init__(self, client: Any, bucket_name: str, key: str, *, part_size: int) -> None:
        self.client, self.bucket, self.key = client, bucket_name, key
        self.base_part_size = max(part_size, 5 * MIB)
        self.buffer = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.size = 0
        self.completed = False
        self.upload_id = client.create_multipart_upload(
            Bucket=bucket_name, Key=key, ContentType="application/octet-stream"
        )["UploadId"]

    @property
    def part_size(self) -> int:
        return self.base_part_size * (1 + len(self.parts) // PARTS_PER_STEP)

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.size += len(data)
        if len(self.buffer) >= self.part_size:
            # The buffer itself is the part (a little over the part size, which S3 allows):
            # no copy of it is ever made.
            self._upload(self.buffer)
            self.buffer = bytearray()

    def _upload(self, body: bytes | bytearray) -> None:
        number = len(self.parts) + 1
        etag = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )["ETag"]
        self.parts.append({"PartNumber": number, "ETag": etag})

    def complete(self) -> None:
        if self.buffer or not self.parts:
            self._upload(self.buffer)
            self.buffer = bytearray()
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )
        self.completed = True

    def abort(self) -> None:
        """Undo the upload: abort it, or delete the object if it was already completed (a
        later step, such as writing its manifest, failed)."""
        with contextlib.suppress(Exception):
            if self.completed:
                self.client.delete_object(Bucket=self.bucket, Key=self.key)
            else:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )


class ObjectReader:
    """`read(n)` over an object's body, pinned to one version of it by its ETag, counting and
    hashing what it hands out."""

    def __init__(self, client: Any, bucket_name: str, key: str, *, etag: str = "") -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket_name, "Key": key}
        if etag:
            kwargs["IfMatch"] = etag
        response = client.get_object(**kwargs)
        self.etag = response["ETag"]
        self.length = int(response.get("ContentLength") or 0)
        self.body = response["Body"]
        self.size = 0
        self.hash = hashlib.sha256()

    def read(self, n: int) -> bytes:
        data = self.body.read(n)
        self.size += len(data)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever the archive reader left, so the checksum covers it all."""
        while self.read(MIB):
            pass

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.body.close()


def object_head(client: Any, bucket_name: str, key: str) -> dict[str, Any]:
    return client.head_object(Bucket=bucket_name, Key=key)


def list_objects(client: Any, bucket_name: str, prefix: str) -> Iterator[dict[str, Any]]:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket_name, Prefix=prefix):
        yield from page.get("Contents", [])
