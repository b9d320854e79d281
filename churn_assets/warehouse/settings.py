"""Parse the warehouse URL that selects the embedded engine or a ClickHouse server."""

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

URL_VARIABLE = "CHURN_WAREHOUSE_URL"
PASSWORD_VARIABLE = "CHURN_WAREHOUSE_PASSWORD"
LOCK_TIMEOUT_VARIABLE = "CHURN_WAREHOUSE_LOCK_TIMEOUT"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EMBEDDED_PATH = PROJECT_ROOT / ".warehouse" / "chdb"
DEFAULT_LOCK_TIMEOUT_SECONDS = 600.0


class WarehouseUrlError(ValueError):
    """Raised when the warehouse URL cannot be used."""


@dataclass(frozen=True)
class WarehouseSettings:
    """Connection settings for either the embedded engine (`path`) or a server (`host`)."""

    kind: str
    path: Path | None = None
    host: str | None = None
    port: int | None = None
    secure: bool = False
    username: str = "default"
    password: str = ""
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS

    @property
    def is_embedded(self) -> bool:
        return self.kind == "chdb"

    def describe(self) -> str:
        """Return a printable location that never includes the password."""
        if self.is_embedded:
            return f"chdb://{self.path}"
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.username}@{self.host}:{self.port}"


def parse_url(url: str, password: str = "", lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> WarehouseSettings:
    """Turn `chdb:///abs/path`, `chdb://relative/path` or `http(s)://user@host:port` into settings.

    A password in the URL is accepted, but `CHURN_WAREHOUSE_PASSWORD` keeps it out of the URL.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()

    if scheme == "chdb":
        raw_path = unquote(parts.netloc + parts.path)
        if not raw_path:
            raise WarehouseUrlError(f"Warehouse URL {url!r} has no path; use chdb:///absolute/path.")
        return WarehouseSettings(
            kind="chdb",
            path=Path(raw_path).expanduser().resolve(),
            lock_timeout_seconds=lock_timeout_seconds,
        )

    if scheme in ("http", "https"):
        if not parts.hostname:
            raise WarehouseUrlError(f"Warehouse URL {parts.scheme}://... has no host name.")
        secure = scheme == "https"
        return WarehouseSettings(
            kind="server",
            host=parts.hostname,
            port=parts.port or (8443 if secure else 8123),
            secure=secure,
            username=unquote(parts.username or "default"),
            password=password or unquote(parts.password or ""),
            lock_timeout_seconds=lock_timeout_seconds,
        )

    raise WarehouseUrlError(
        f"Warehouse URL scheme {parts.scheme!r} is not supported; use chdb://, http:// or https://."
    )


def load_settings(environ: dict[str, str] | None = None) -> WarehouseSettings:
    """Read the warehouse settings from the environment, defaulting to the embedded engine."""
    environ = os.environ if environ is None else environ
    url = environ.get(URL_VARIABLE) or f"chdb://{DEFAULT_EMBEDDED_PATH}"
    timeout_text = environ.get(LOCK_TIMEOUT_VARIABLE) or str(DEFAULT_LOCK_TIMEOUT_SECONDS)
    try:
        lock_timeout = float(timeout_text)
    except ValueError as error:
        raise WarehouseUrlError(f"{LOCK_TIMEOUT_VARIABLE}={timeout_text!r} is not a number of seconds.") from error
    return parse_url(url, password=environ.get(PASSWORD_VARIABLE, ""), lock_timeout_seconds=lock_timeout)
