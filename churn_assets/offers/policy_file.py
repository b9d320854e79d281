"""Read an offer policy from a YAML file."""

from pathlib import Path

import yaml

from churn_assets.offers.policy import OfferPolicy, Tier

ALLOWED_KEYS = {
    "tiers", "code_prefix", "validity_days", "control_share", "exclude_never_purchased", "exclude_unexpired_offers",
    "min_days_between_offers", "max_offers_per_campaign", "opt_out_file",
}


def load_policy(path: Path) -> OfferPolicy:
    """Build an OfferPolicy from YAML; raise ValueError naming unknown keys or bad values."""
    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"Cannot read offer policy {path}: {error}") from error
    if not isinstance(document, dict):
        raise ValueError(f"Offer policy {path} must be a mapping of settings.")
    unknown = set(document) - ALLOWED_KEYS
    if unknown:
        raise ValueError(f"Offer policy {path} has unknown keys: {', '.join(sorted(unknown))}.")

    settings = dict(document)
    if "tiers" in settings:
        try:
            settings["tiers"] = tuple(
                Tier(str(tier["name"]), float(tier["min_probability"]), int(tier["discount_percent"])) for tier in settings["tiers"]
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"Offer policy {path}: each tier needs name, min_probability and discount_percent ({error}).") from error
    return OfferPolicy(**settings)
