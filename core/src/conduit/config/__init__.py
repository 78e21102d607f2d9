"""Config: YAML with positions, variable expansion, the flow models and their resolution."""

from conduit.config.flow import Endpoint, EntityPlan, Flow, load_flow

__all__ = ["Endpoint", "EntityPlan", "Flow", "load_flow"]
