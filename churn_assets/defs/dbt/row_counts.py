"""Add row counts to the materializations of dbt models built as tables.

dagster-dbt's own row counting queries through the dbt adapter while dbt still runs, which the
embedded warehouse's one-process lock would stall. Here the counts are taken after dbt exits.
"""

from collections.abc import Iterator, Mapping

import dagster as dg

from churn_assets.defs.resources import WarehouseResource


def counted_relation(event, manifest: Mapping) -> tuple[str, str] | None:
    """Return (database, table) of a dbt model output worth counting: tables and incremental models, not views."""
    if not isinstance(event, dg.Output) or "unique_id" not in event.metadata:
        return None
    node = manifest["nodes"].get(event.metadata["unique_id"].value)
    if node is None or node["config"].get("materialized") == "view":
        return None
    return node["schema"], node["alias"]


def with_row_counts(events: Iterator, warehouse: WarehouseResource, manifest: Mapping) -> Iterator:
    """Yield dbt's events in their order once dbt exits, with `dagster/row_count` on each table output.

    Holding every event back, not only the outputs, keeps each test's result after its model's
    materialization, so the UI ties the check to the new materialization.
    """
    events_in_order = []
    failure = None
    try:
        events_in_order.extend(events)
    except dg.Failure as error:
        # The models dbt built before the failure are still reported, with their counts.
        failure = error

    relations = {index: counted_relation(event, manifest) for index, event in enumerate(events_in_order)}
    counts = {}
    if any(relations.values()):
        with warehouse.open() as client:
            for index, relation in relations.items():
                if relation is not None:
                    counts[index] = int(client.command(
                        "SELECT count() FROM {database:Identifier}.{table:Identifier}",
                        parameters={"database": relation[0], "table": relation[1]},
                    ))

    for index, event in enumerate(events_in_order):
        yield event.with_metadata({**event.metadata, "dagster/row_count": counts[index]}) if index in counts else event
    if failure is not None:
        raise failure
