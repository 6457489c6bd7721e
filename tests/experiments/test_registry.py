"""The registries as data: sources parse once into typed values and write back to the same text."""

import pytest

from exvo_keras.registry import (AUTO, AUTO_HYBRID, NETWORKS, ROWS, SSL_FEATURE_SETS, Hybrid, NetworkSource, Row,
                                 SystemSource, embedded_networks, parse_source, row_by_key, systems)


@pytest.mark.parametrize("text, parsed", [("raw_exvo_er-sys1", SystemSource("raw_exvo_er-sys1")),
                                          ("network:raw_exvo_cr", NetworkSource("raw_exvo_cr")),
                                          ("auto", AUTO)])
def test_a_source_parses_once_and_writes_back_as_it_was(text, parsed):
    assert parse_source(text) == parsed and str(parsed) == text
    assert parse_source(parsed) is parsed


def test_hybrids_hold_typed_sources_whatever_they_were_written_as():
    written = Hybrid(2, "x", "Sys-1", "hybrid-x", (("emotion", "compare-sys1"), ("country", "network:raw_exvo_cr")),
                     None)
    assert written.source_of("emotion") == SystemSource("compare-sys1")
    assert written.source_of("country") == NetworkSource("raw_exvo_cr")
    assert set(dict(AUTO_HYBRID.sources).values()) == {AUTO}


def test_every_source_and_feature_of_the_tables_is_registered():
    features = set(NETWORKS) | set(SSL_FEATURE_SETS) | {"compare", "deepspectrum"}
    for row in ROWS:
        if isinstance(row, Row):
            assert set(row.features) <= features, row.key
        else:
            for _, source in row.sources:
                if isinstance(source, SystemSource):
                    assert isinstance(row_by_key(source.key), Row), (row.key, source)
                elif isinstance(source, NetworkSource):
                    assert NETWORKS[source.network].task == "country", (row.key, source)
    assert len(systems()) < len(ROWS)  # Table 3 repeats Table 2 systems under the same keys
    assert embedded_networks() == ["raw_exvo_er", "zff_exvo_er", "raw_ser", "zff_ser", "raw_asr"]


def test_rows_that_reproduce_a_paper_row_carry_its_name_and_extra_rows_say_so():
    from exvo_keras.experiments.paper import paper_row

    for row in ROWS:
        if isinstance(row, Row) and row.paper is not None and row.config in ("Sys-1", "Sys-2"):
            # found in the paper's own table by the name shown in ours (Table 3's "Raw(AMI)" among them)
            assert row.system == row.paper[0], row
            assert paper_row(row.table, *row.paper) is not None, row
    fusion = [r for r in ROWS if r.table == 3 and set(getattr(r, "features", ())) == {"raw_exvo_er", "raw_asr"}]
    assert {r.system for r in fusion} == {"Raw(ExVo)-ER + Raw(AMI)"}
    layered = [r for r in ROWS if isinstance(r, Row) and r.layer is not None]
    assert {r.features[0] for r in layered} == set(SSL_FEATURE_SETS)
    assert all(r.paper is None and "beyond the paper" in r.system and r.table == 2 for r in layered)
    assert len({r.key for r in layered}) == len(layered) == 3 * len(SSL_FEATURE_SETS)
