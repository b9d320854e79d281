"""Read discount offers and their recorded outcome from the warehouse, and write the outcome back."""

import numpy as np
import pandas as pd
import pyarrow as pa

from churn_assets.simulate.offers import NOT_SET, OUTCOME_COLUMNS, OfferBook
from churn_assets.simulate.parameters import MILLISECONDS_PER_DAY, RunParameters
from churn_assets.simulate.population import STATUS_NAMES

STATUS_CODES = {name: code for code, name in STATUS_NAMES.items()}


def load_offer_book(client, run: RunParameters, first_day: int, last_day: int) -> OfferBook:
    """Build the offer book of the days first_day..last_day from analytics.discount_offers and sim.offer_truth.

    An offer is valid on the whole days between its created_at and expires_at. Offers first seen
    before `first_day` are restored from sim.offer_truth when they still matter: an open code or
    a return still to come. Rows that sim.offer_truth contains from a stopped run, for days not yet
    checkpointed, are ignored and simulated again.
    """
    first_ms = run.day_start_ms(first_day)
    offers = client.query_df(
        "SELECT offer_id, campaign_id, user_id, offer_group, discount_code, discount_percent, "
        "toUnixTimestamp64Milli(created_at) AS created_ms, toUnixTimestamp64Milli(expires_at) AS expires_ms "
        "FROM analytics.discount_offers FINAL WHERE expires_at > fromUnixTimestamp64Milli({first_ms:Int64}, 'UTC')",
        parameters={"first_ms": first_ms},
    )
    offers = _with_user_index(offers, run.users)
    if offers.empty:
        return OfferBook.empty(run.users)
    start_ms = run.day_start_ms(0)
    offers["first_valid_day"] = -((start_ms - offers["created_ms"]) // MILLISECONDS_PER_DAY)
    offers["last_day"] = (offers["expires_ms"] - start_ms) // MILLISECONDS_PER_DAY - 1
    offers["activation_day"] = offers["first_valid_day"].clip(lower=first_day)

    known = _read_known_outcomes(client, run, first_day)
    merged = offers.merge(known, on=["campaign_id", "user_id"], how="left", suffixes=("", "_known"))
    activated = merged["activation_day_known"].notna()
    merged["activated"] = activated

    new = ~activated & (merged["activation_day"] <= merged["last_day"]) & (merged["activation_day"] <= last_day)
    still_matters = activated & (
        ((merged["offer_group"] == "treatment") & (merged["redeemed_day"] == NOT_SET) & (merged["last_day"] >= first_day))
        | (merged["persuaded"].fillna(False).astype(bool) & (merged["return_day"] >= first_day))
    )
    selected = merged[new | still_matters].copy()
    known_day = pd.to_numeric(selected["activation_day_known"]).to_numpy()
    selected["activation_day"] = np.where(selected["activated"], known_day, selected["activation_day"]).astype(np.int64)
    return OfferBook(selected, run.users)


def _with_user_index(offers: pd.DataFrame, users: int) -> pd.DataFrame:
    # Offers for user ids outside this shop (another data set in the same warehouse) are skipped.
    if offers.empty:
        return offers
    digits = offers["user_id"].astype(str).str.extract(r"^u(\d{7,})$", expand=False)
    index = pd.to_numeric(digits, errors="coerce")
    offers = offers.assign(user_index=index)[index.notna() & (index < users)].copy()
    offers["user_index"] = offers["user_index"].astype(np.int64)
    offers["discount_percent"] = offers["discount_percent"].astype(np.int64)
    return offers.reset_index(drop=True)


def _read_known_outcomes(client, run: RunParameters, first_day: int) -> pd.DataFrame:
    """Return the outcome of offers activated before `first_day`, as the state of that day saw them."""
    known = client.query_df(
        "SELECT campaign_id, user_id, activation_date, status_at_offer, return_probability, no_purchase_probability, "
        "uplift_probability, persuaded, return_date, redeemed, redeemed_at "
        "FROM sim.offer_truth FINAL WHERE activation_date < {first_date:Date}",
        parameters={"first_date": run.date_of(first_day)},
    )
    if known.empty:
        columns = ["campaign_id", "user_id", "activation_day_known", *OUTCOME_COLUMNS]
        return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
    start = pd.Timestamp(run.start_date)
    known["activation_day_known"] = (pd.to_datetime(known["activation_date"]) - start).dt.days.astype(np.int64)
    known["status_at_offer"] = known["status_at_offer"].map(STATUS_CODES).astype(np.int64)
    known["persuaded"] = known["persuaded"].astype(bool)
    return_dates = pd.to_datetime(known["return_date"])
    known["return_day"] = (return_dates - start).dt.days.fillna(NOT_SET).astype(np.int64)

    redeemed_at = pd.to_datetime(known["redeemed_at"], utc=True)
    redeemed_ms = (redeemed_at - pd.Timestamp(start, tz="UTC")) // pd.Timedelta(milliseconds=1)
    redeemed_day = (redeemed_ms // MILLISECONDS_PER_DAY).fillna(NOT_SET).astype(np.int64)
    # A redemption on or after first_day belongs to days that are simulated again.
    earlier = (known["redeemed"] == 1) & (redeemed_day < first_day)
    known["redeemed_day"] = np.where(earlier, redeemed_day, NOT_SET)
    known["redeemed_second"] = np.where(earlier, (redeemed_ms % MILLISECONDS_PER_DAY).fillna(0) // 1000, NOT_SET).astype(np.int64)
    return known.drop(columns=["activation_date", "return_date", "redeemed", "redeemed_at"])


def offer_truth_table(book: OfferBook, offers: np.ndarray, run: RunParameters) -> pa.Table:
    """Return the sim.offer_truth rows of the given offers of the book."""
    frame = book.offers.iloc[offers]
    epoch_day = (run.start_date - pd.Timestamp(0).date()).days

    def dates(days: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
        mask = None if present is None else ~present
        return pa.array((epoch_day + days).astype(np.int32), pa.date32(), mask=mask)

    redeemed = book.redeemed_day[offers] != NOT_SET
    redeemed_ms = run.day_start_ms(0) + book.redeemed_day[offers] * MILLISECONDS_PER_DAY + book.redeemed_second[offers] * 1000
    return pa.table({
        "offer_id": pa.array(frame["offer_id"].astype(object), pa.string()),
        "campaign_id": pa.array(frame["campaign_id"].astype(object), pa.string()),
        "user_id": pa.array(frame["user_id"].astype(object), pa.string()),
        "offer_group": pa.array(frame["offer_group"].astype(object), pa.string()),
        "discount_code": pa.array(frame["discount_code"].astype(object), pa.string()),
        "discount_percent": pa.array(book.discount_percent[offers].astype(np.uint8)),
        "activation_date": dates(book.activation_day[offers]),
        "last_valid_date": dates(book.last_day[offers]),
        "status_at_offer": pa.array([STATUS_NAMES[int(code)] for code in book.status_at_offer[offers]], pa.string()),
        "return_probability": pa.array(book.return_probability[offers]),
        "no_purchase_probability": pa.array(book.no_purchase_probability[offers]),
        "uplift_probability": pa.array(book.uplift_probability[offers]),
        "persuaded": pa.array(book.persuaded[offers].astype(np.uint8)),
        "return_date": dates(book.return_day[offers], book.persuaded[offers]),
        "redeemed": pa.array(redeemed.astype(np.uint8)),
        "redeemed_at": pa.array(redeemed_ms, pa.timestamp("ms", tz="UTC"), mask=~redeemed),
        "updated_day": pa.array(book.updated_day[offers].astype(np.uint32)),
    })
