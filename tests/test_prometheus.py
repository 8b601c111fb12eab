"""End to end with a real Prometheus: simulator -> exporter -> Prometheus -> PromQL.

Debian's ``prometheus`` scrapes the exporter every second on loopback; every check
goes through Prometheus' HTTP API, as a dashboard or an alert rule would see it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import metrics as m
from exporter.simulator import Organisation, Simulator, generate_organisation
from tests.harness import TOKEN, Exporter, api_env, free_port, wait_for
from tests.promserver import PrometheusServer, static_job

pytestmark = [pytest.mark.e2e, pytest.mark.tools]


@pytest.fixture
def sim_org() -> Organisation:
    return generate_organisation(teams=3, projects_per_team=2)


def exporter_env(sim: Simulator) -> dict[str, str]:
    return api_env(sim.url, TOKEN, request_timeout_seconds="5")


def by_labels(result: list[dict], *names: str) -> dict[tuple[str, ...], float]:  # type: ignore[type-arg]
    out = {}
    for sample in result:
        key = tuple(sample["metric"].get(name, "") for name in names)
        assert key not in out, f"duplicate series for {key}"
        out[key] = float(sample["value"][1])
    return out


def test_costs_reach_prometheus_change_and_survive_a_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    port = free_port()
    org = sim.org
    inv = org.newest_invoice().id
    unfiltered = org.render_invoice(inv)
    teams = {team["id"]: team for team in unfiltered["paasUsage"]["teams"]}
    exporter = Exporter(env=exporter_env(sim), port=port)
    job = static_job("northflank", [f"127.0.0.1:{port}"], scrape_interval="1s")
    with exporter, PrometheusServer([job], workdir=tmp_path) as prom:
        exporter.wait_ready()
        prom.wait_for_series(m.RESOURCE_COST.name)

        # Team totals, with the labels a dashboard groups by.
        got = by_labels(prom.query(m.TEAM_COST.name), "team", "team_name", "currency", "job")
        assert got == {
            (tid, team["name"], "usd", "northflank"): team["price"]["total"] / 100
            for tid, team in teams.items()
        }
        # Projects and resources: every one, with its value.
        projects = by_labels(prom.query(m.PROJECT_COST.name), "team", "project")
        resources = by_labels(
            prom.query(m.RESOURCE_COST.name), "team", "project", "resource_type", "resource"
        )
        expected_projects = {}
        expected_resources = {}
        for tid in teams:
            for project in org.render_invoice(inv, team_id=tid)["paasUsage"]["teams"][0][
                "projects"
            ]:
                expected_projects[(tid, project["id"])] = project["price"]["total"] / 100
                detail = org.render_invoice(inv, team_id=tid, project_id=project["id"])
                for kind in detail["paasUsage"]["teams"][0]["projects"][0]["resourceTypes"]:
                    for res in kind["resources"]:
                        key = (tid, project["id"], kind["resourceType"], res["id"])
                        expected_resources[key] = res["price"]["total"] / 100
        assert projects == pytest.approx(expected_projects)
        assert resources == pytest.approx(expected_resources)
        # Parts add up to totals in PromQL too.
        [paas] = prom.query(m.PAAS_COST.name)
        [teams_sum] = prom.query("sum(northflank_team_cost)")
        assert float(teams_sum["value"][1]) == pytest.approx(float(paas["value"][1]))

        # A change in the API's figures shows after the next poll.
        tid, pid = "team-1", "web"
        resource = org.invoice(inv).team(tid).project(pid).resources[0]
        org.set_resource_price(inv, tid, pid, resource.id, cpu=123_456)
        new_team_total = org.render_invoice(inv)["paasUsage"]["teams"][0]["price"]["total"] / 100
        where = f'team="{tid}",project="{pid}",resource="{resource.id}",dimension="cpu"'
        expr = f"northflank_resource_dimension_cost{{{where}}}"
        wait_for(lambda: prom.query(f"{expr} == 1234.56"), timeout=20)
        wait_for(
            lambda: prom.query(f'northflank_team_cost{{team="{tid}"}} == {new_team_total}'),
            timeout=20,
        )

        # A restart of the exporter: no duplicate and no orphaned series afterwards.
        exporter.stop()
        wait_for(lambda: prom.query('up{job="northflank"} == 0'), timeout=20)
        with Exporter(env=exporter_env(sim), port=port) as again:
            again.wait_ready()
            wait_for(lambda: prom.query('up{job="northflank"} == 1'), timeout=20)
            wait_for(lambda: prom.query("northflank_up == 1"), timeout=20)
            after = by_labels(
                prom.query(m.RESOURCE_COST.name),
                "team",
                "project",
                "resource_type",
                "resource",
            )
            assert set(after) == set(expected_resources)
            [count] = prom.query("count(northflank_resource_cost)")
            assert int(count["value"][1]) == len(expected_resources)
            duplicates = prom.query("count by (team) (northflank_team_cost) > 1")
            assert duplicates == []
            [instances] = prom.query("count(count by (instance) (northflank_up))")
            assert int(instances["value"][1]) == 1
