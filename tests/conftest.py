"""The suite uses the harness's fixtures exactly as a customer's tests would."""

pytest_plugins = ["sandbox.pytest_plugin", "pytester"]
