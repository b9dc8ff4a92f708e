"""Lead lists and results in object storage (S3, GCS, Azure Blob; HTTPS for reading).

Reading: one GET streams the object into a private local file, and the ETag, version and size
of that same response say exactly which upload was read (the run log keeps them). Writing: the
results are written locally as always (atomic, 0600), then uploaded whole as one PUT, so a
reader of the bucket never sees half a file. The checkpoint never leaves the local disk: SQLite
on object storage is not safe.

obstore (Rust's object_store, which polars' own cloud I/O is built on) does the transfers; the
S3 credentials come from boto3's chain (environment, profile, SSO, instance role), which
honours AWS_EC2_METADATA_DISABLED and named profiles where object_store alone does not.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dialer.config_schema import is_insecure_remote
from dialer.errors import OutputError, UserError, first_line

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

    from dialer.config_schema import StorageConfig

READ_SCHEMES = ("s3", "gs", "az", "https", "http")
WRITE_SCHEMES = ("s3", "gs", "az")
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class StorageError(UserError):
    """An object that cannot be read (exit 2: nothing was sent)."""


def is_url(text: str | os.PathLike[str]) -> bool:
    """A location with a scheme (`s3://...`), as opposed to a local path (even `C:\\...`)."""
    scheme = urlsplit(str(text)).scheme
    return len(scheme) > 1 and "://" in str(text)


def loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS


@dataclass(frozen=True)
class ObjectUrl:
    """`s3://bucket/key`: the scheme, the bucket (or host, for HTTPS) and the key inside it."""

    url: str
    scheme: str
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str, *, writing: bool = False) -> ObjectUrl:
        """Raises ValueError with a sentence saying what is wrong with `url`."""
        parts = urlsplit(url)
        allowed = WRITE_SCHEMES if writing else READ_SCHEMES
        if parts.scheme not in allowed:
            raise ValueError(
                f"{url}: {'writing' if writing else 'reading'} supports "
                f"{', '.join(s + '://' for s in allowed)} URLs and local paths"
            )
        if parts.scheme == "http" and not loopback_http(url):
            raise ValueError(f"{url}: plain http:// is allowed only to a loopback address; use https://")
        key = parts.path.lstrip("/")
        if not parts.netloc or not key or key.endswith("/"):
            raise ValueError(f"{url}: name a bucket and an object key, like s3://bucket/folder/leads.csv")
        return cls(url=url, scheme=parts.scheme, bucket=parts.netloc, key=key)

    @property
    def suffix(self) -> str:
        return Path(self.key).suffix


@dataclass(frozen=True)
class Fetched:
    """An object as read: where its bytes now are locally, and what identified them."""

    url: str
    path: Path | None  # None: only looked at (a HEAD), not fetched
    size: int
    etag: str | None
    version: str | None
    last_modified: datetime | None

    @property
    def fingerprint(self) -> str:
        """What the run log keeps as the input's identity: which upload was dialed."""
        version = f" version {self.version}" if self.version else ""
        return f"{self.url} etag {self._etag}{version} size {self.size}"

    def describe(self) -> str:
        when = f", last modified {self.last_modified:%Y-%m-%d %H:%M:%S} UTC" if self.last_modified else ""
        return f"{self.url}: {self.size:,} bytes{when}, ETag {self._etag}"

    @property
    def _etag(self) -> str:
        return (self.etag or "-").strip('"')  # S3 quotes its ETags


@dataclass(frozen=True)
class StorageOptions:
    """`[storage]` and the environment, resolved: where S3 is and whose credentials to use."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None

    @classmethod
    def of(cls, config: StorageConfig | None, environ: os._Environ[str] | dict[str, str]) -> StorageOptions:
        endpoint = config.endpoint_url if config and config.endpoint_url else None
        endpoint = endpoint or next((environ[name] for name in ENDPOINT_ENV if environ.get(name)), None)
        return cls(
            endpoint_url=endpoint,
            region=config.region if config else None,
            profile=config.profile if config else None,
        )


def fetch(obj: ObjectUrl, options: StorageOptions, dest: Path) -> Fetched:
    """Stream `obj` into `dest` (created 0600); a StorageError in one sentence if it cannot."""
    import obstore

    store = _store(obj, options)
    try:
        result = obstore.get(store, obj.key)
        meta = result.meta
        handle = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "wb") as out:
            for chunk in result.stream():
                out.write(memoryview(chunk))
    except Exception as exc:  # noqa: BLE001 - obstore's errors are sorted by type in _reading_error
        with contextlib.suppress(OSError):
            dest.unlink()
        raise _reading_error(obj, options, store, exc) from None
    return _fetched(obj, meta, dest)


def look(obj: ObjectUrl, options: StorageOptions) -> Fetched:
    """What `fetch` would read, from a HEAD: enough to tell whether the object changed."""
    import obstore

    store = _store(obj, options)
    try:
        meta = obstore.head(store, obj.key)
    except Exception as exc:  # noqa: BLE001 - sorted by type in _reading_error
        raise _reading_error(obj, options, store, exc) from None
    return _fetched(obj, meta, None)


def _fetched(obj: ObjectUrl, meta: Any, path: Path | None) -> Fetched:
    """What obstore's object metadata (of a GET or a HEAD) says, as a Fetched."""
    return Fetched(
        url=obj.url,
        path=path,
        size=int(meta["size"]),
        etag=meta.get("e_tag"),
        version=meta.get("version"),
        last_modified=meta.get("last_modified"),
    )


def publish(local: Path, obj: ObjectUrl, options: StorageOptions) -> None:
    """Upload `local` whole as one PUT (never multipart: no reader sees a part); OutputError if not."""
    import obstore

    try:
        store = _store(obj, options)
        with local.open("rb") as source:
            obstore.put(store, obj.key, source, use_multipart=False)
    except StorageError as exc:
        raise OutputError(f"{obj.url}: the file could not be uploaded: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of the upload is the same answer
        raise OutputError(f"{obj.url}: the file could not be uploaded ({first_line(exc)})") from None


def _store(obj: ObjectUrl, options: StorageOptions) -> Any:
    from obstore.store import HTTPStore, from_url

    client: ClientConfig = {"timeout": timedelta(seconds=120), "connect_timeout": timedelta(seconds=5)}
    retry: RetryConfig = {
        "max_retries": 2,
        "retry_timeout": timedelta(seconds=20),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
            "base": 2,
        },
    }
    if obj.scheme == "s3":
        return _s3_store(obj, options, client, retry)
    if obj.scheme in ("https", "http"):
        if obj.scheme == "http":
            client["allow_http"] = True
        return HTTPStore.from_url(f"{obj.scheme}://{obj.bucket}", client_options=client, retry_config=retry)
    return from_url(f"{obj.scheme}://{obj.bucket}", client_options=client, retry_config=retry)


def _s3_store(obj: ObjectUrl, options: StorageOptions, client: ClientConfig, retry: RetryConfig) -> Any:
    import boto3
    import botocore.exceptions
    from obstore.auth.boto3 import Boto3CredentialProvider
    from obstore.store import S3Store

    try:
        session = boto3.session.Session(profile_name=options.profile)
    except botocore.exceptions.ProfileNotFound:
        given = "[storage] profile" if options.profile else "AWS_PROFILE"
        raise StorageError(
            f"{obj.url}: the AWS profile '{options.profile or os.environ.get('AWS_PROFILE')}' ({given}) "
            "is not in the AWS config files; check its name, or remove it to use the default credentials"
        ) from None
    if session.get_credentials() is None:
        raise StorageError(
            f"{obj.url}: no AWS credentials were found (environment, profile or instance role); set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or [storage] profile"
        )
    endpoint = options.endpoint_url
    if endpoint and is_insecure_remote(endpoint):  # from AWS_ENDPOINT_URL: [storage] is checked already
        raise StorageError(
            f"{obj.url}: the endpoint {endpoint} is plain http:// to a non-loopback host: credentials "
            "and lead lists would travel unencrypted. Use https://"
        )
    if endpoint and endpoint.startswith("http://"):
        client = {**client, "allow_http": True}  # only to loopback: the config refuses any other
    config: S3Config = {"region": options.region or session.region_name or "us-east-1"}
    if endpoint:
        config["endpoint"] = endpoint
    return S3Store(
        obj.bucket,
        config=config,
        client_options=client,
        retry_config=retry,
        credential_provider=Boto3CredentialProvider(session),
    )


def _reading_error(obj: ObjectUrl, options: StorageOptions, store: Any, exc: BaseException) -> UserError:
    """One sentence per failure, decided by obstore's exception types."""
    import obstore
    from obstore.exceptions import NotFoundError, PermissionDeniedError, UnauthenticatedError

    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError):
        return StorageError(
            f"{obj.url}: access denied: the credentials in use may not read this object (or are "
            "not valid there); ask for read access to it, or check the credentials and region"
        )
    if isinstance(exc, NotFoundError | FileNotFoundError):  # obstore raises the built-in one too
        try:
            next(iter(obstore.list(store, prefix=obj.key, chunk_size=1)), None)
        except Exception:  # noqa: BLE001 - listing fails the same way when the bucket is missing
            return StorageError(
                f"{obj.url}: there is no bucket '{obj.bucket}' at this endpoint; check the URL"
                f"{' and [storage] endpoint_url' if options.endpoint_url else ''}"
            )
        return StorageError(f"{obj.url}: there is no object '{obj.key}' in '{obj.bucket}'; check the key")
    where = options.endpoint_url or f"the {obj.scheme}:// service"
    return StorageError(
        f"{obj.url}: {where} could not be reached or refused the request ({first_line(exc)}); "
        "check the network and [storage] endpoint_url (or AWS_ENDPOINT_URL)"
    )
