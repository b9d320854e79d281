"""Asset checks on scores and offers: drift against the training data, and offer policy compliance."""

import math
import os

import dagster as dg

from churn_assets.defs.resources import WarehouseResource

DRIFT_FEATURES = ("days_since_last_purchase", "count_purchases_90d", "purchase_value_90d")
PSI_WARNING_LEVEL = 0.2
PSI_FLOOR = 1e-4


def population_stability_index(expected_counts: list[int], actual_counts: list[int]) -> float:
    """Return the PSI between two histograms over the same bins; empty bins count as a tiny share."""
    expected_total, actual_total = sum(expected_counts), sum(actual_counts)
    if expected_total == 0 or actual_total == 0:
        return float("nan")
    index = 0.0
    for expected, actual in zip(expected_counts, actual_counts):
        expected_share = max(expected / expected_total, PSI_FLOOR)
        actual_share = max(actual / actual_total, PSI_FLOOR)
        index += (actual_share - expected_share) * math.log(actual_share / expected_share)
    return index


def decile_counts(client, column: str, reference_sql: str, current_sql: str, parameters: dict | None = None) -> tuple[list[int], list[int]]:
    """Count reference and current values in the reference data's deciles of `column`.

    Both queries may use bound `parameters`.
    """
    parameters = dict(parameters or {})
    edges = client.query(
        "SELECT arraySort(arrayDistinct(quantiles(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)"
        f"(toFloat64(`{column}`)))) FROM ({reference_sql})",
        parameters=parameters,
    ).result_rows[0][0]

    def counts(sql: str) -> list[int]:
        rows = client.query(
            f"SELECT arrayCount(edge -> edge < toFloat64(`{column}`), {{edges:Array(Float64)}}) AS bin, count() "
            f"FROM ({sql}) GROUP BY bin ORDER BY bin",
            parameters={**parameters, "edges": list(edges)},
        ).result_rows
        histogram = [0] * (len(edges) + 1)
        for bin_index, count in rows:
            histogram[bin_index] = count
        return histogram

    return counts(reference_sql), counts(current_sql)


@dg.asset_check(asset="churn_scores", description="PSI of top features (user_features against the training cutoff) and of scores (against the previous run).")
def score_drift(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    reference = "SELECT * FROM analytics.churn_training_set WHERE split = 'evaluation'"
    current = "SELECT * FROM analytics.user_features"
    metadata: dict[str, float] = {}
    with warehouse.open() as client:
        for column in DRIFT_FEATURES:
            expected, actual = decile_counts(client, column, reference, current)
            metadata[f"psi_{column}"] = round(population_stability_index(expected, actual), 4)
        runs = client.query("SELECT scoring_run_id FROM analytics.scoring_runs FINAL ORDER BY completed_at DESC LIMIT 2").result_rows
        if len(runs) == 2:
            expected, actual = decile_counts(
                client, "churn_probability",
                "SELECT churn_probability FROM analytics.churn_scores WHERE scoring_run_id = {previous:String}",
                "SELECT churn_probability FROM analytics.latest_churn_scores",
                parameters={"previous": runs[1][0]},
            )
            metadata["psi_churn_probability"] = round(population_stability_index(expected, actual), 4)
    worst = max((value for value in metadata.values() if not math.isnan(value)), default=0.0)
    return dg.AssetCheckResult(
        passed=worst <= PSI_WARNING_LEVEL,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"Largest PSI {worst:.3f}; above {PSI_WARNING_LEVEL} means the population moved noticeably.",
        metadata=metadata,
    )


@dg.asset_check(asset="discount_offers", description="Each user has at most one decision per campaign, codes are unique, and every treated offer was sent.")
def offer_policy_compliance(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.open() as client:
        decisions, user_campaigns, codes, unsent = client.query(
            "SELECT count(), uniqExact(campaign_id, user_id), uniqExact(discount_code), "
            "countIf(offer_group = 'treatment' AND concat('offer-', offer_id) NOT IN "
            "(SELECT event_id FROM raw.user_actions WHERE action = 'offer_sent')) "
            "FROM analytics.discount_offers FINAL"
        ).result_rows[0]
    problems = []
    if user_campaigns != decisions:
        problems.append(f"{decisions - user_campaigns} duplicate user decisions in a campaign")
    if codes != decisions:
        problems.append(f"{decisions - codes} duplicate discount codes")
    if unsent:
        problems.append(f"{unsent} treated offers without an offer_sent action")
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or "All offers comply.",
        metadata={"decisions": decisions, "distinct_codes": codes, "unsent_treatment_offers": unsent},
    )


REDEMPTION_FLOOR_VARIABLE = "CHURN_REDEMPTION_RATE_FLOOR"
DEFAULT_REDEMPTION_FLOOR = 0.02


@dg.asset_check(
    asset="offer_redemption",
    description="Warns when a finished campaign's redemption rate (redeemed / sent) is below CHURN_REDEMPTION_RATE_FLOOR (default 0.02).",
)
def redemption_rate_floor(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    floor = float(os.environ.get(REDEMPTION_FLOOR_VARIABLE) or DEFAULT_REDEMPTION_FLOOR)
    with warehouse.open() as client:
        # Only campaigns whose every offer expired before the latest event have a final rate.
        rows = client.query(
            "SELECT redemption.campaign_id, sum(redemption.count_redemptions) / sum(redemption.count_offers_sent) AS rate "
            "FROM analytics.offer_redemption AS redemption "
            "INNER JOIN analytics.campaign_lift AS lift ON redemption.campaign_id = lift.campaign_id "
            "WHERE lift.last_expires_at < (SELECT max(event_at) FROM intermediate.int_user_events) "
            "GROUP BY redemption.campaign_id HAVING sum(redemption.count_offers_sent) > 0"
        ).result_rows
    below = {campaign: round(rate, 4) for campaign, rate in rows if rate < floor}
    return dg.AssetCheckResult(
        passed=not below,
        severity=dg.AssetCheckSeverity.WARN,
        description=(f"Campaigns below the floor {floor}: {below}" if below else f"{len(rows)} finished campaign(s) at or above {floor}."),
        metadata={"finished_campaigns": len(rows), "campaigns_below_floor": len(below), "floor": floor},
    )
