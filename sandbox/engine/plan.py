"""Preview without an account: the program under mocks answering with placeholder IDs and ARNs."""

from __future__ import annotations

from typing import Any

import pulumi

from sandbox.engine.invokes import answer_invoke
from sandbox.engine.registry import handler_for
from sandbox.engine.schema import with_provider_defaults

ACCOUNT_PLACEHOLDER = "<account>"


class PlanMocks(pulumi.runtime.Mocks):
    """Answers every registration with placeholders, as a preview shows values known after apply.

    The placeholders are the stateful engine's own (each handler's `predict`), in account
    `<account>`: one place for what a resource's name and ARN will be.
    """

    def __init__(self, region: str) -> None:
        self._region = region

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """Echo the inputs and fill in the name and ARN the resource would get."""
        inputs = dict(args.inputs)
        if not args.custom:
            return f"{args.name}-id", inputs
        handler = handler_for(args.typ, args.name)
        return f"{args.name}-id", handler.predict(
            ACCOUNT_PLACEHOLDER, self._region, args.name, with_provider_defaults(args.typ, inputs)
        )

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Provider functions answer from the configured region."""
        answer = answer_invoke(
            args.token, dict(args.args), region=self._region, account=ACCOUNT_PLACEHOLDER
        )
        return answer, []
