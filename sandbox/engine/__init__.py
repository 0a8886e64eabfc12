"""The local engine: the unmodified program under Pulumi mocks, previewed and applied to moto."""
