"""Reading Prometheus text expositions in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def counter(text: str, family_name: str, **labels: str) -> float:
    """The value of one labelled counter in a Prometheus text exposition
    (0 when it has not been counted yet)."""
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            for sample in family.samples:
                if sample.name.endswith("_total") and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return sample.value
    return 0.0


def scrape_headers(token: str | None) -> dict[str, str]:
    """What a scrape of the api's /metrics sends: the METRICS_TOKEN bearer
    when the api has one (unset or empty: /metrics is open)."""
    return {"Authorization": f"Bearer {token}"} if token else {}
