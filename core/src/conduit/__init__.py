"""Conduit: declarative data ingestion with Arrow batches, plugins and exactly-once loads.

The public API for plugin authors and for running flows from Python::

    from conduit import hookimpl, Source, Destination, LoadSession, ConnectorOptions
    from conduit import load_flow, run_flow
"""

from conduit.checks import Check, CheckOptions
from conduit.connectors import (
    ConnectorOptions,
    CursorFilter,
    Destination,
    DestinationCapabilities,
    LoadSession,
    ReadRequest,
    Secret,
    Source,
    SourceBatch,
    SourceCapabilities,
    WriteMode,
    WriteRequest,
)
from conduit.errors import (
    ConduitError,
    ConfigError,
    ConnectorError,
    DataError,
    DataLocation,
    PluginError,
    RetriableConnectorError,
    SchemaError,
    UnknownTypeError,
)
from conduit.hookspecs import hookimpl
from conduit.plugins import core_version

__version__ = core_version()

__all__ = [
    "Check",
    "CheckOptions",
    "ConduitError",
    "ConfigError",
    "ConnectorError",
    "ConnectorOptions",
    "CursorFilter",
    "DataError",
    "DataLocation",
    "Destination",
    "DestinationCapabilities",
    "LoadSession",
    "PluginError",
    "ReadRequest",
    "RetriableConnectorError",
    "Secret",
    "SchemaError",
    "Source",
    "SourceBatch",
    "SourceCapabilities",
    "UnknownTypeError",
    "WriteMode",
    "WriteRequest",
    "__version__",
    "hookimpl",
]
