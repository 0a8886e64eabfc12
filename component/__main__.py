"""The component package's plugin: serve CohortDestination to programs in any Pulumi language."""

from provisioning.package import serve

if __name__ == "__main__":
    serve()
