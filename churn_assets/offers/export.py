"""Export a campaign's treated offers as CSV and JSON Lines for marketing tools, and notify senders."""

import json
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path

import pandas as pd

from churn_assets.warehouse.settings import PROJECT_ROOT

EXPORT_DIR_VARIABLE = "CHURN_EXPORT_DIR"
EXPORT_COLUMNS = [
    "offer_id", "campaign_id", "user_id", "discount_code", "discount_percent", "tier", "churn_probability", "created_at", "expires_at",
]


def export_root() -> Path:
    return Path(os.environ.get(EXPORT_DIR_VARIABLE) or PROJECT_ROOT / "exports").resolve()


def read_campaign_offers(client, campaign_id: str) -> pd.DataFrame:
    """Return the campaign's treated offers in export column order, oldest first."""
    frame = client.query_df(
        "SELECT offer_id, campaign_id, user_id, discount_code, discount_percent, tier, churn_probability, created_at, expires_at "
        "FROM analytics.discount_offers FINAL WHERE campaign_id = {campaign:String} AND offer_group = 'treatment' "
        "ORDER BY user_id",
        parameters={"campaign": campaign_id},
    )
    for column in ("created_at", "expires_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return frame[EXPORT_COLUMNS]


def write_export(offers: pd.DataFrame, campaign_id: str, root: Path | None = None) -> tuple[Path, Path]:
    """Write `<root>/<campaign>/offers.csv` and `offers.jsonl`, replacing earlier files atomically."""
    folder = (root or export_root()) / campaign_id
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, jsonl_path = folder / "offers.csv", folder / "offers.jsonl"

    partial_csv = csv_path.with_suffix(".csv.partial")
    offers.to_csv(partial_csv, index=False)
    partial_csv.replace(csv_path)

    partial_jsonl = jsonl_path.with_suffix(".jsonl.partial")
    with partial_jsonl.open("w") as handle:
        for record in offers.to_dict(orient="records"):
            handle.write(json.dumps(record, default=str) + "\n")
    partial_jsonl.replace(jsonl_path)
    return csv_path, jsonl_path


class Notifier(ABC):
    """Sends new offers to customers. Subclass it for an email or webhook sender."""

    @abstractmethod
    def send(self, offers: pd.DataFrame) -> int:
        """Send the offers and return how many were sent."""


class LogNotifier(Notifier):
    """The default notifier: sends nothing, and records what it would send in a log line and a file."""

    def __init__(self, outbox: Path, logger: logging.Logger | None = None):
        self.outbox = outbox
        self.logger = logger or logging.getLogger(__name__)

    def send(self, offers: pd.DataFrame) -> int:
        if offers.empty:
            return 0
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        with self.outbox.open("a") as handle:
            for record in offers.to_dict(orient="records"):
                handle.write(json.dumps(record, default=str) + "\n")
        self.logger.info("Recorded %d offers in %s (no message was sent)", len(offers), self.outbox)
        return len(offers)
