"""The topic and event contract (`topics/catalog.yaml`): what each topic is, carries and how it is keyed."""

from streams.catalog.model import Catalog, CatalogError, EventType, TopicSpec, load

__all__ = ["Catalog", "CatalogError", "EventType", "TopicSpec", "load"]
