"""CohortDestination as a Pulumi component package: the SDK's component provider, schema inferred.

`component/__main__.py` serves it; `pulumi package add` then generates an SDK for TypeScript, Go,
C#, Java or YAML from the schema below. The SDK's `component_provider_host` has no way to mark an
input secret, so this builds the same ComponentProvider and serves it with the same `main`, after
marking `externalId` secret in the schema.
"""

import json
import sys
from collections.abc import Sequence

from pulumi.provider import main
from pulumi.provider.experimental.component import ComponentProvider

from provisioning import constants as c
from provisioning.component import CohortDestination

# The package's version: what `pulumi package add` records, and the generated SDKs carry.
VERSION = "0.1.0"
SECRET_INPUTS = (c.CONFIG_EXTERNAL_ID,)


def provider() -> ComponentProvider:
    """The component provider for CohortDestination, its schema's secret inputs marked."""
    hosted = ComponentProvider([CohortDestination], c.PROJECT_NAME, version=VERSION)
    assert hosted.schema is not None
    schema = json.loads(hosted.schema)
    inputs = schema["resources"][c.COMPONENT_TYPE]["inputProperties"]
    for key in SECRET_INPUTS:
        inputs[key]["secret"] = True
    hosted.schema = json.dumps(schema)
    return hosted


def serve(args: Sequence[str] = ()) -> None:
    """Run the provider as a plugin: what Pulumi starts for `pulumi package add` and each deploy."""
    main(provider(), list(args or sys.argv[1:]))
