"""The simulator's own sums of this month's breakdown, to check the exporter's against:
every settled hour of every project, asked one project at a time
(``render_usage_hour`` with ``teamId`` and ``projectId``), added exactly.

Keys as :data:`exporter.month.Key`: (team, project), + resource type, + resource; values
(name, total, {dimension: amount}) in major units, as exact fractions of the decimals the
simulator wrote (the project's name, a resource's, or "" for a type).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from exporter.simulator import HOUR, Organisation
from exporter.simulator.model import PAAS_DIMENSIONS

Sums = dict[tuple[str, ...], tuple[str, Fraction, dict[str, Fraction]]]


def simulated(org: Organisation, now: float, since: float, through: float, depth: str) -> Sums:
    """The hours from ``since`` to ``through`` at ``depth`` (project or resource)."""
    sums: Sums = {}

    def add(key: tuple[str, ...], name: str, price: dict[str, Any]) -> None:
        _, total, dimensions = sums.get(key, (name, Fraction(0), {}))
        for dimension in PAAS_DIMENSIONS:
            if dimension in price:
                dimensions[dimension] = dimensions.get(dimension, Fraction(0)) + exact(
                    price[dimension]
                )
        sums[key] = (name, total + exact(price["total"]), dimensions)

    for hour in range(int(since), int(through), int(HOUR)):
        for team in org.teams:
            listed = org.render_usage_hour(hour, now=now, team_id=team.id, contract="current")
            for project in listed["paas"]["teams"][0]["projects"]:
                data = org.render_usage_hour(
                    hour, now=now, team_id=team.id, project_id=project["id"], contract="current"
                )
                for p in data["paas"]["teams"][0]["projects"]:
                    at = (team.id, p["id"])
                    add(at, p["name"], p["price"])
                    if depth != "resource":
                        continue
                    for kind in p["resourceTypes"]:
                        typed = (*at, kind["resourceType"])
                        add(typed, "", kind["price"])
                        for resource in kind["resources"]:
                            add((*typed, resource["id"]), resource["name"], resource["price"])
    return sums


def exact(value: float) -> Fraction:
    """The decimal the JSON wrote, exactly."""
    return Fraction(repr(value))
