"""What the exporter's end-to-end tests share (tests/e2e/): how long past the
newest invoice their ``sim`` runs, how the exporter is started against it, and the figures
it should serve, computed from the simulator's own views of its organisation (cents / 100,
as exact decimals: :func:`tests.contracts.major`), never from the exporter's code."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from typing import Any

from exporter import metrics as m
from exporter.simulator import Simulator
from tests.contracts import major
from tests.harness import TOKEN, Scrape, api_env

PAAS = {"cpu": "cpu", "memory": "memory", "storage": "storage", "gpu": "gpu"}
BYOC = {"vcpu": "vcpu", "memory": "memory", "gpuMemory": "gpu_memory", "cluster": "cluster"}

SIM_HOURS = 5.5
"""What ``sim_hours`` (tests/e2e/conftest.py) returns: ``sim`` (tests/conftest.py) is the demo
organisation, 5.5 hours past the newest invoice: 5 whole hours."""


def exporter_env(sim: Simulator, **overrides: str) -> dict[str, str]:
    return api_env(sim.url, TOKEN, **overrides)


def run_once(sim: Simulator, status: int = 0, **overrides: str) -> subprocess.CompletedProcess[str]:
    """``--once`` against ``sim``; fails unless it exits ``status``."""
    env = {"PATH": "/usr/bin:/bin", **exporter_env(sim, **overrides)}
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == status, result.stderr
    return result


# --------------------------------------------------------------------------- expected values


def expected_series(
    sim: Simulator, contract: str = "current"
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every cost series the exporter should serve for the newest invoice, from the
    simulator, when it reads ``contract`` (the current one: also the invoice's status and
    the credit balance)."""
    org = sim.org
    inv_id = org.newest_invoice().id
    data = org.render_invoice(inv_id)
    cur = data["currency"]
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def put(name: str, value: float, **labels: str) -> None:
        out[(name, frozenset(labels.items()))] = value

    def put_price(
        family: str, price: dict[str, float], dims: dict[str, str], **labels: str
    ) -> None:
        put(f"northflank_{family}_cost", major(price["total"]), currency=cur, **labels)
        for key, dim in dims.items():
            if key in price:
                put(
                    f"northflank_{family}_dimension_cost",
                    major(price[key]),
                    currency=cur,
                    dimension=dim,
                    **labels,
                )

    put(m.INVOICE_INFO.name, 1, invoice_id=inv_id, currency=cur)
    put(m.INVOICE_PERIOD_START.name, data["period"]["start"])
    put(m.INVOICE_PERIOD_END.name, data["period"]["end"])
    put(m.INVOICE_AMOUNT.name, major(data["total"]), currency=cur)
    put(m.INVOICE_SUBTOTAL.name, major(data["subTotal"]), currency=cur)
    put(m.INVOICE_DISCOUNT.name, major(data["discounts"]["total"]), currency=cur)
    put(m.INVOICE_TAX.name, major(data["tax"]["amount"]), currency=cur)
    put(m.INVOICE_TAX_RATIO.name, data["tax"]["percent"] / 100)
    put(m.INVOICE_PAID.name, float(data["paid"]))
    if contract == "current":
        put(m.INVOICE_STATUS.name, 1, status=org.invoice(inv_id).status)
        put_credit(sim, put)
    items: dict[str, dict[str, float]] = {}
    for item in data["lineItems"]:
        acc = items.setdefault(item["title"], {})
        for part in ("total", "base", "proration"):
            if part in item:
                acc[part] = acc.get(part, 0) + item[part]
    for title, parts in items.items():
        for part, family in (("total", ""), ("base", "_base"), ("proration", "_proration")):
            if part in parts:
                put(
                    f"northflank_invoice_line_item{family}_amount",
                    major(parts[part]),
                    currency=cur,
                    item=title,
                )
    put_unbilled(sim, put, inv_id, cur)
    put_price("byoc", data["byocUsage"]["price"], BYOC)
    put_price("paas", data["paasUsage"]["price"], PAAS)
    for team in data["paasUsage"]["teams"]:
        tid = team["id"]
        put_price("team", team["price"], PAAS, team=tid, team_name=team["name"])
        team_view = org.render_invoice(inv_id, team_id=tid)["paasUsage"]["teams"][0]
        for project in team_view["projects"]:
            pid = project["id"]
            put_price(
                "project",
                project["price"],
                PAAS,
                team=tid,
                project=pid,
                project_name=project["name"],
            )
            detail = org.render_invoice(inv_id, team_id=tid, project_id=pid)
            for kind in detail["paasUsage"]["teams"][0]["projects"][0]["resourceTypes"]:
                rtype = kind["resourceType"]
                put_price(
                    "resource_type", kind["price"], PAAS, team=tid, project=pid, resource_type=rtype
                )
                for res in kind["resources"]:
                    put_price(
                        "resource",
                        res["price"],
                        PAAS,
                        team=tid,
                        project=pid,
                        resource_type=rtype,
                        resource=res["id"],
                        resource_name=res["name"],
                    )
    return out


def put_unbilled(sim: Simulator, put: Any, inv_id: str, cur: str) -> None:
    """The unbilled families: the simulator's hours since the newest invoice, summed."""
    org = sim.org
    now = sim.clock()
    hours = org.render_usage(now=now)
    since = org.invoice(inv_id).period_end
    put(m.UNBILLED_SINCE.name, since)
    put(m.UNBILLED_THROUGH.name, max(h["timestamp"] for h in hours) + 3600)
    paas = {dim: 0.0 for dim in PAAS.values()}
    byoc = {dim: 0.0 for dim in BYOC.values()}
    total = 0.0
    for entry in hours:
        for key, dim in PAAS.items():
            paas[dim] += entry["paasUsage"]["price"].get(key, 0)
        for key, dim in BYOC.items():
            byoc[dim] += entry["byocUsage"]["price"].get(key, 0)
        total += entry["paasUsage"]["price"]["total"] + entry["byocUsage"]["price"]["total"]
    put(m.UNBILLED_COST.name, major(total), currency=cur)
    for dim, value in paas.items():
        put(m.UNBILLED_PAAS_DIMENSION_COST.name, major(value), currency=cur, dimension=dim)
    for dim, value in byoc.items():
        put(m.UNBILLED_BYOC_DIMENSION_COST.name, major(value), currency=cur, dimension=dim)
    for team in org.render_invoice(inv_id)["paasUsage"]["teams"]:
        team_hours = org.render_usage(now=now, team_id=team["id"])
        spent = sum(h["paasUsage"]["price"]["total"] for h in team_hours)
        put(
            m.TEAM_UNBILLED_COST.name,
            major(spent),
            currency=cur,
            team=team["id"],
            team_name=team["name"],
        )


def put_credit(sim: Simulator, put: Any) -> None:
    """The credit families, from the simulator's credit balance (current contract)."""
    doc = sim.org.render_credit_balance(now=sim.clock())
    cur = doc["currency"]
    put(m.CREDIT_AVAILABLE.name, doc["total"]["available"], currency=cur)
    put(m.CREDIT_PENDING.name, doc["total"]["pending"], currency=cur)
    put(m.CREDIT_GRANT_AVAILABLE.name, doc["grants"]["available"], currency=cur)
    put(m.CREDIT_GRANT_PENDING.name, doc["grants"]["pending"], currency=cur)
    put(m.CUSTOMER_BALANCE.name, doc["customerBalance"]["amount"], currency=cur)
    synced = datetime.fromisoformat(doc["lastSyncedAt"].replace("Z", "+00:00")).timestamp()
    put(m.CREDIT_SYNCED.name, synced)


def cost_series(scrape: Scrape) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {key: value for key, value in scrape.samples.items() if key[0] in m.COST_NAMES}
