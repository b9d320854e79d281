"""Write discount offers for high-risk users and log each sent offer as an offer_sent action."""

from datetime import datetime, time as clock_time, timedelta, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa

from churn_assets.defs.automation.conditions import after_upstream_changes
from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.retries import retried_on_passing_failures
from churn_assets.offers.codes import load_code_key
from churn_assets.offers.export import LogNotifier, export_root, read_campaign_offers, write_export
from churn_assets.offers.policy import OfferPolicy, PriorOffers, Tier, decide_offers
from churn_assets.offers.policy_file import load_policy
from churn_assets.warehouse.schema import ensure_pipeline_tables

OFFER_COLUMNS = [
    "offer_id", "campaign_id", "user_id", "offer_group", "tier", "discount_percent", "discount_code",
    "churn_probability", "model_version", "scoring_run_id", "created_at", "expires_at",
]


class TierConfig(dg.Config):
    name: str
    min_probability: float
    discount_percent: int


class OfferConfig(dg.Config):
    """Offer policy: above `min_probability` a user gets `discount_percent` off; `extra_tiers` add more
    levels (the highest threshold a user exceeds wins). An empty campaign id means `retention-<feature date>`."""

    min_probability: float = 0.8
    discount_percent: int = 20
    extra_tiers: list[TierConfig] = []
    campaign_id: str = ""
    code_prefix: str = "SAVE"
    validity_days: int = 30
    control_share: float = 0.1
    min_days_between_offers: int = 0
    max_offers_per_campaign: int = -1
    opt_out_file: str = ""
    policy_file: str = ""

    def policy(self) -> OfferPolicy:
        """Return the policy from `policy_file` when set (it replaces the other policy fields), else from these fields."""
        if self.policy_file:
            return load_policy(self.policy_file)
        return OfferPolicy(
            tiers=(
                Tier("base", self.min_probability, self.discount_percent),
                *(Tier(tier.name, tier.min_probability, tier.discount_percent) for tier in self.extra_tiers),
            ),
            code_prefix=self.code_prefix,
            validity_days=self.validity_days,
            control_share=self.control_share,
            min_days_between_offers=self.min_days_between_offers,
            max_offers_per_campaign=None if self.max_offers_per_campaign < 0 else self.max_offers_per_campaign,
            opt_out_file=self.opt_out_file,
        )


def read_candidate_scores(client, min_probability: float) -> pd.DataFrame:
    return client.query_df(
        "SELECT scores.user_id AS user_id, scores.churn_probability AS churn_probability, "
        "scores.model_version AS model_version, scores.scoring_run_id AS scoring_run_id, "
        "scores.feature_date AS feature_date, features.has_purchased AS has_purchased "
        "FROM analytics.latest_churn_scores AS scores "
        "LEFT JOIN analytics.user_features AS features ON scores.user_id = features.user_id "
        "WHERE scores.churn_probability > {threshold:Float64}",
        parameters={"threshold": min_probability},
    )


def user_set(client, sql: str, parameters: dict) -> set[str]:
    return {user for (user,) in client.query(sql, parameters=parameters).result_rows}


def read_opt_out_list(path: str) -> set[str]:
    """Return the user ids of an opt-out file, one per line (blank lines and # comments ignored)."""
    if not path:
        return set()
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise dg.Failure(f"Cannot read the opt-out list {path}: {error}", allow_retries=False) from error
    return {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}


def read_prior_offers(client, policy: OfferPolicy, campaign_id: str, created_at: datetime) -> PriorOffers:
    """Collect the earlier decisions that constrain this campaign's new offers."""
    recent_since = created_at - timedelta(days=policy.min_days_between_offers)
    return PriorOffers(
        already_in_campaign=user_set(client, "SELECT user_id FROM analytics.discount_offers WHERE campaign_id = {c:String}", {"c": campaign_id}),
        holding_unexpired_offer=user_set(
            client,
            "SELECT DISTINCT user_id FROM analytics.discount_offers FINAL "
            "WHERE offer_group = 'treatment' AND campaign_id != {c:String} AND expires_at > {at:DateTime64(3, 'UTC')}",
            {"c": campaign_id, "at": created_at},
        ),
        offered_recently=user_set(
            client,
            "SELECT DISTINCT user_id FROM analytics.discount_offers FINAL "
            "WHERE offer_group = 'treatment' AND campaign_id != {c:String} AND created_at > {since:DateTime64(3, 'UTC')}",
            {"c": campaign_id, "since": recent_since},
        ) if policy.min_days_between_offers else set(),
        opted_out=read_opt_out_list(policy.opt_out_file),
        treated_in_campaign=int(client.command(
            "SELECT count() FROM analytics.discount_offers FINAL WHERE campaign_id = {c:String} AND offer_group = 'treatment'",
            parameters={"c": campaign_id},
        )),
    )


def append_offer_sent_actions(client, campaign_id: str) -> int:
    """Add one offer_sent action per treated offer of the campaign that has none yet; return the count added."""
    before = int(client.command("SELECT count() FROM raw.user_actions WHERE action = 'offer_sent'"))
    client.command(
        "INSERT INTO raw.user_actions "
        "(event_id, user_id, action, event_at, discount_code, value, source_file, source_line, ingest_id, loaded_at) "
        "SELECT concat('offer-', offer_id), user_id, 'offer_sent', created_at, discount_code, NULL, "
        "concat('pipeline:discount_offers/', campaign_id), 0, scoring_run_id, now64(3, 'UTC') "
        "FROM analytics.discount_offers FINAL "
        "WHERE campaign_id = {campaign:String} AND offer_group = 'treatment' "
        "AND concat('offer-', offer_id) NOT IN (SELECT event_id FROM raw.user_actions WHERE action = 'offer_sent')",
        parameters={"campaign": campaign_id},
    )
    return int(client.command("SELECT count() FROM raw.user_actions WHERE action = 'offer_sent'")) - before


@dg.asset(
    deps=["churn_scores"],
    group_name="offers",
    kinds={"clickhouse"},
    description="One row per offer decision (treatment or control) for users above the churn threshold.",
    automation_condition=after_upstream_changes(),
)
@retried_on_passing_failures
def discount_offers(context: dg.AssetExecutionContext, config: OfferConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    try:
        policy = config.policy()
    except ValueError as error:
        raise dg.Failure(f"Invalid offer policy: {error}", allow_retries=False) from error

    with warehouse.open() as client:
        ensure_pipeline_tables(client)
        scores = read_candidate_scores(client, policy.lowest_threshold)
        feature_date = client.query("SELECT max(feature_date) FROM analytics.latest_churn_scores").result_rows[0][0]
        campaign_id = config.campaign_id or f"retention-{feature_date}"
        # Offers live on the shop's timeline: the campaign starts at the first day the features have not seen.
        created_at = datetime.combine(feature_date, clock_time(0), tzinfo=timezone.utc)

        prior = read_prior_offers(client, policy, campaign_id, created_at)
        decisions = decide_offers(scores, policy, campaign_id, created_at, load_code_key(), prior)
        if len(decisions.offers):
            client.insert_arrow("analytics.discount_offers", pa.Table.from_pandas(decisions.offers[OFFER_COLUMNS], preserve_index=False))
        actions_added = append_offer_sent_actions(client, campaign_id)
        campaign_offers = read_campaign_offers(client, campaign_id)
        totals = client.query(
            "SELECT offer_group, count() FROM analytics.discount_offers FINAL WHERE campaign_id = {c:String} GROUP BY offer_group",
            parameters={"c": campaign_id},
        ).result_rows

    by_group = dict(totals)
    csv_path, jsonl_path = write_export(campaign_offers, campaign_id)
    new_treated = campaign_offers[campaign_offers["offer_id"].isin(decisions.offers["offer_id"])] if len(decisions.offers) else campaign_offers.iloc[0:0]
    notified = LogNotifier(export_root() / campaign_id / "outbox.jsonl").send(new_treated)
    context.log.info(
        f"Campaign {campaign_id}: {len(scores)} users above {policy.lowest_threshold}, {len(decisions.offers)} new decisions "
        f"({int((decisions.offers['offer_group'] == 'treatment').sum()) if len(decisions.offers) else 0} offers), "
        f"{actions_added} offer_sent actions added; excluded {decisions.excluded}"
    )
    return dg.MaterializeResult(
        metadata={
            "campaign_id": campaign_id,
            "users_above_threshold": len(scores),
            "new_decisions": len(decisions.offers),
            "treatment_total": int(by_group.get("treatment", 0)),
            "control_total": int(by_group.get("control", 0)),
            "dagster/row_count": int(by_group.get("treatment", 0)) + int(by_group.get("control", 0)),
            "offer_sent_actions_added": actions_added,
            "offers_notified": notified,
            "export_csv": dg.MetadataValue.path(str(csv_path)),
            "export_jsonl": dg.MetadataValue.path(str(jsonl_path)),
            **{f"excluded_{reason}": count for reason, count in decisions.excluded.items()},
            "preview": dg.MetadataValue.md(decisions.offers.head(10)[["user_id", "offer_group", "tier", "discount_code", "churn_probability"]].to_markdown(index=False) if len(decisions.offers) else "no new offers"),
        }
    )
