"""The program as a Pulumi component package: the SDK's component provider, schema inferred.

`component/__main__.py` serves it; `pulumi package add` then generates an SDK for TypeScript, Go,
C#, Java or YAML from the schema below: CohortDestination and CohortConsumer, the two components
`__main__.py` declares. The SDK's analyzer reads types from the annotations; each input's
description, default and secrecy come from the key table (`provisioning/keys.py`), so the schema
says what Pulumi.yaml and the README say.
"""

import json
import sys
from collections.abc import Sequence
from typing import Any

from pulumi.provider import main
from pulumi.provider.experimental.component import ComponentProvider

from provisioning import constants as c
from provisioning.component import CohortDestination
from provisioning.consumer import REQUIRED_INPUTS, STREAM_INPUTS, CohortConsumer
from provisioning.keys import BY_NAME

# The package's version: what `pulumi package add` records, and the generated SDKs carry.
VERSION = "0.1.0"


# The metaschema allows a `default` of a primitive type only (propertySpec's "default").
_PRIMITIVE_TYPES = ("boolean", "integer", "number", "string")


def _describe(inputs: dict[str, Any], described: dict[str, str]) -> None:
    """Each input's description, default and secrecy: the component's words, else the table's."""
    for name, spec in inputs.items():
        if name in described:
            spec["description"] = described[name]
            continue
        key = BY_NAME[name]
        spec["description"] = key.description
        if key.type in _PRIMITIVE_TYPES:
            spec["default"] = key.default
        if key.secret:
            spec["secret"] = True


def provider() -> ComponentProvider:
    """The component provider for both components, inputs described by the key table."""
    hosted = ComponentProvider([CohortDestination, CohortConsumer], c.PROJECT_NAME, version=VERSION)
    assert hosted.schema is not None
    schema = json.loads(hosted.schema)
    resources = schema["resources"]
    _describe(resources[c.COMPONENT_TYPE]["inputProperties"], {})
    consumer = resources[c.CONSUMER_COMPONENT_TYPE]
    _describe(consumer["inputProperties"], STREAM_INPUTS)
    consumer["requiredInputs"] = list(REQUIRED_INPUTS)
    hosted.schema = json.dumps(schema)
    return hosted


def serve(args: Sequence[str] = ()) -> None:
    """Run the provider as a plugin: what Pulumi starts for `pulumi package add` and each deploy."""
    main(provider(), list(args or sys.argv[1:]))
