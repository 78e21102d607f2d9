"""The conformance kit: pytest base classes every connector package runs (``conduit-core[testing]``).

A connector package's contract test is a few lines::

    from conduit.testing import RoundTripTests

    class TestCsvRoundTrip(RoundTripTests):
        source_type = "csv"
        destination_type = "csv"

        @pytest.fixture
        def destination_options(self, tmp_path):
            return {"path": str(tmp_path / "golden.csv")}

        @pytest.fixture
        def source_options(self, destination_options):
            return {"path": destination_options["path"]}

        @pytest.fixture
        def broken_source_options(self, tmp_path):
            return {"path": str(tmp_path / "missing.csv")}

        @pytest.fixture
        def broken_destination_options(self, tmp_path):
            ...

The connectors are looked up through the real plugin registry, so the test also proves the package's
entry point works. Tests that need a capability the connector does not declare are skipped with a
reason that names the capability (never silently). The base classes' names do not start with
``Test``, so pytest collects only the subclasses. (They deliberately do not set ``__test__ = False``:
that attribute is inherited and would silently switch off every subclass.)
"""

from conduit.testing.golden import assert_tables_equal, golden_table
from conduit.testing.roundtrip import RoundTripTests, build_destination, build_source, read_all, write_all

__all__ = [
    "RoundTripTests",
    "assert_tables_equal",
    "build_destination",
    "build_source",
    "golden_table",
    "read_all",
    "write_all",
]
