"""`make lambda-archive ARCH=…`: the checkout's door to `cohort-lambda-archive` (same code).

make lambda-archive ARCH=x86_64     # or ARCH=arm64; writes dist/lambda-<arch>.zip
"""

from provisioning.archive_build import main

if __name__ == "__main__":
    raise SystemExit(main())
