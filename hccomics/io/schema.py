"""The manifest schema as JSON Schema, for editors and for ``data_manifests/manifest.schema.json``."""

from __future__ import annotations

import json

from hccomics.io.manifest import Manifest

__all__ = ["manifest_json_schema"]


def manifest_json_schema() -> str:
    """Return the JSON Schema of :class:`~hccomics.io.manifest.Manifest` as indented text.

    Examples
    --------
    >>> '"schema_version"' in manifest_json_schema()
    True
    """
    return json.dumps(Manifest.model_json_schema(), indent=2, sort_keys=True) + "\n"
