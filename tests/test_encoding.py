"""Our encoder writes the very bytes prometheus_client's ``generate_latest`` writes.

The cost families are encoded by ``exporter.encoding`` for speed and memory (see its
docstring); the contract allows that only while its output equals prometheus_client's,
byte for byte, in text and in OpenMetrics. Hypothesis draws random families: label
values with quotes, backslashes, newlines and unicode; help texts likewise; values NaN,
+-Inf, -0, huge and tiny; gauges and counters; empty families.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterator

from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.encoding import Family, Spec, encode, exposition, labels, number
from exporter.metrics import COST, OWN

NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True).filter(
    lambda name: not name.endswith(("_total", "_created", "_count", "_sum", "_bucket"))
)
LABEL_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)  # no lone surrogates
TRICKY_TEXT = st.one_of(TEXT, st.sampled_from(['"', "\\", "\n", '\\"\n', "é ü 東京 🚀", ""]))
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, 5e-324, 1e-9, 123456789.0]),
)


@st.composite
def families(draw: st.DrawFn) -> tuple[Spec, list[tuple[dict[str, str], float]]]:
    """A family's declaration and its samples: (labels, value) each."""
    label_names = tuple(sorted(draw(st.sets(LABEL_NAMES, max_size=4))))
    spec = Spec(
        draw(NAMES),
        draw(TRICKY_TEXT),
        draw(st.sampled_from(["gauge", "counter"])),
        label_names,
    )
    samples = draw(
        st.lists(
            st.tuples(st.fixed_dictionaries({name: TRICKY_TEXT for name in label_names}), VALUES),
            max_size=5,
        )
    )
    return spec, samples


class Fixed(Collector):
    """prometheus_client's families for the same declarations and samples."""

    def __init__(self, drawn: list[tuple[Spec, list[tuple[dict[str, str], float]]]]) -> None:
        self.drawn = drawn

    def collect(self) -> Iterator[Metric]:
        for spec, samples in self.drawn:
            kind = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            family = kind(spec.name, spec.help, labels=spec.labels)
            for label_values, value in samples:
                family.add_metric([label_values[name] for name in spec.labels], value)
            yield family


def ours(drawn: list[tuple[Spec, list[tuple[dict[str, str], float]]]]) -> tuple[bytes, bytes]:
    built = []
    for spec, samples in drawn:
        family = Family(spec)
        for label_values, value in samples:
            family.add(labels(**{name: label_values[name] for name in spec.labels}), value)
        built.append(family)
    encoded = encode(built)
    return b"".join(encoded.text), b"".join(encoded.openmetrics) + b"# EOF\n"


def theirs(drawn: list[tuple[Spec, list[tuple[dict[str, str], float]]]]) -> tuple[bytes, bytes]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(drawn))
    return generate_latest(registry), generate_openmetrics(registry)


DRAWN = st.lists(families(), max_size=6, unique_by=lambda family: family[0].name)


@settings(max_examples=400, deadline=None)
@given(DRAWN)
@example([(Spec("x", 'a "quoted"\\ help\nline'), [({}, -0.0)])])
@example(
    [
        (
            Spec("c", "counted", "counter", ("code", "endpoint")),
            [({"code": "200", "endpoint": "a"}, 3.0)],
        )
    ]
)
@example([(Spec("empty", "no samples"), [])])
def test_bytes_equal_prometheus_client_in_both_formats(
    drawn: list[tuple[Spec, list[tuple[dict[str, str], float]]]],
) -> None:
    text, openmetrics = ours(drawn)
    their_text, their_openmetrics = theirs(drawn)
    assert text == their_text
    assert openmetrics == their_openmetrics


@given(VALUES)
def test_number_is_prometheus_clients_float_format(value: float) -> None:
    from prometheus_client.utils import floatToGoString

    assert number(value) == floatToGoString(value)


def test_the_cost_families_declared_with_sorted_label_names() -> None:
    """Our label text is written in the declared order: it must be the sorted order."""
    for spec in (*COST, *OWN):
        assert list(spec.labels) == sorted(spec.labels), spec.name
    assert len({spec.name for spec in (*COST, *OWN)}) == len(COST) + len(OWN)


def test_the_gzip_body_is_one_member_that_every_reader_takes_whole() -> None:
    """httpx (like several HTTP clients) reads only the first gzip member of a body."""
    family = Family(Spec("demo", "d"))
    family.add('a="1"', 2.0)
    body = exposition(encode([family]), b"# own text\n", b"# own om\n# EOF\n", 0)
    for fmt in (body.text, body.openmetrics):
        member = b"".join(fmt.gzipped)
        reader = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one member, as httpx reads
        assert reader.decompress(member) == fmt.plain
        assert reader.eof
        assert reader.unused_data == b""
        assert gzip.decompress(member) == fmt.plain
    assert body.openmetrics.plain.endswith(b"# EOF\n")
