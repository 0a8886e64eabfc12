"""The local engine: the unmodified program under Pulumi mocks, previewed and applied to moto."""

# The stack `local up` and the pytest fixtures use unless told otherwise (this project ships
# Pulumi.dev.yaml). Here, not in stack.py, so cohort-sync's parser can name it without loading
# the engine's dependencies.
DEFAULT_STACK = "dev"
