from __future__ import annotations

from mlops_operator.monitoring.measure import render_query


def test_query_placeholders_follow_the_served_version() -> None:
    query = 'sum(mlops_requests_total{model="{{ model }}",version="{{version}}",x="{{ other }}"})'
    assert render_query(query, model="iris", version=3) == (
        'sum(mlops_requests_total{model="iris",version="3",x="{{ other }}"})'
    )
