"""The page at ``/`` in a real browser: headless Chromium against the exporter and simulator.

Chromium screenshots the page at a wide screen's and a phone's width; the PNGs must not
be blank. Its ``--dump-dom`` must hold every team's name and invoice amount as ``/metrics``
serves them. ``NORTHFLANK_UPDATE_DOCS=1`` saves the wide screenshot as the README's
``docs/landing-page.png``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from exporter import metrics as m
from exporter.page import money
from exporter.simulator import ManualClock, Simulator, generate_organisation
from tests.harness import Exporter, api_env

pytestmark = [pytest.mark.tools, pytest.mark.e2e]
TOKEN = "browser-test-token"
DOCS_PNG = Path(__file__).parent.parent / "docs" / "landing-page.png"


@pytest.fixture(scope="module")
def served() -> Iterator[Exporter]:
    """The demo organisation five hours into the month, with budgets, behind an exporter
    that breaks this month down by project (its two settled hours summed)."""
    org = generate_organisation()
    since = org.newest_invoice().period_end
    clock = ManualClock(since + 5.5 * 3600)
    # polls every second would keep the API's 1000 an hour to themselves: a larger limit
    with Simulator(org, token=TOKEN, clock=clock, rate_limit=10**7) as sim:
        env = api_env(sim.url, TOKEN, budgets="team-1=5000, *=4000", unbilled_depth="project")
        with Exporter(env=env) as exporter:
            exporter.wait_ready()
            through = m.UNBILLED_BREAKDOWN_THROUGH.name
            exporter.wait_metric(through, lambda v: v == since + 2 * 3600)
            yield exporter


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Chromium is missing: scripts/test installs Debian's chromium"
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done


def png_rows(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, unfiltered rows as RGB(A) bytes) of an 8-bit non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), header
    assert colour in (2, 6), header
    bpp = 4 if colour == 6 else 3
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    rows, prior = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prior, strict=True))
        elif kind in (1, 3, 4):
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up = prior[i]
                if kind == 1:
                    pred = left
                elif kind == 3:
                    pred = (left + up) // 2
                else:
                    corner = prior[i - bpp] if i >= bpp else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prior = rows[-1]
    return width, height, rows


@pytest.mark.parametrize("width", [1280, 390])
def test_screenshots_are_not_blank(served: Exporter, tmp_path: Path, width: int) -> None:
    shot = tmp_path / f"page-{width}.png"
    chromium(tmp_path, f"--window-size={width},1150", f"--screenshot={shot}", served.url + "/")
    data = shot.read_bytes()
    got_width, height, rows = png_rows(data)
    assert (got_width, height) == (width, 1150)
    bpp = len(rows[0]) // width
    background = rows[0][:3]
    colours: set[bytes] = set()
    inked = 0
    for row in rows:
        pixels = [row[i : i + 3] for i in range(0, len(row), bpp)]
        colours.update(pixels)
        inked += sum(1 for pixel in pixels if pixel != background)
    assert inked > 0.03 * width * height, f"{inked} pixels differ from the background: blank?"
    assert len(colours) > 20  # text, dark and light bars, the budget mark
    if width == 1280 and os.environ.get("NORTHFLANK_UPDATE_DOCS") == "1":
        DOCS_PNG.write_bytes(data)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def test_the_rendered_page_names_every_team_with_its_amount(
    served: Exporter, tmp_path: Path
) -> None:
    scrape = served.scrape()
    teams = {
        dict(labels)["team_name"]: value
        for labels, value in scrape.family(m.TEAM_COST.name).items()
    }
    assert len(teams) == 4
    dom = chromium(tmp_path, "--dump-dom", served.url + "/").stdout.decode()
    parser = _Text()
    parser.feed(dom)
    text = " ".join(parser.parts)
    assert "Spend by team" in text
    assert "Last poll: ok" in text
    for name, amount in teams.items():
        assert name in text
        assert f"invoice {money(amount, 'usd')}" in text, (name, amount)
    assert "budget 5,000.00 USD" in text


def test_this_months_top_projects_are_rendered_beside_the_invoices(
    served: Exporter, tmp_path: Path
) -> None:
    """The most expensive project of this month, as /metrics serves it, in the rendered
    page under its own heading."""
    projects = served.scrape().family(m.PROJECT_UNBILLED_COST.name)
    assert len(projects) == 4 * 3
    labels, amount = max(projects.items(), key=lambda item: item[1])
    dom = chromium(tmp_path, "--dump-dom", served.url + "/").stdout.decode()
    parser = _Text()
    parser.feed(dom)
    text = " ".join(parser.parts)
    assert "This month, through" in text
    month = text[text.index("This month, through") :]
    assert month.index(dict(labels)["project_name"]) < month.index(money(amount, "usd"))
