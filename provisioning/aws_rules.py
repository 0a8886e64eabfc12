"""AWS's own rules for the values the program takes, as pure checks returning a problem or None.

A check returns the rule a value breaks, worded for the person who typed it, or None when AWS
would accept it. The sources are AWS's API references (and terraform-provider-aws, which
pulumi-aws bridges), cited at each rule.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Final

import pulumi_aws

from provisioning import constants as c

# A region name as terraform-provider-aws checks it (internal/verify/validate.go, `regionRegexp`):
# two letters, dash-separated words, a number. A new region is well formed before pulumi-aws
# knows it.
REGION_PATTERN: Final = r"[a-z]{2}(-[a-z]+)+-\d{1,2}"
KNOWN_REGIONS: Final = tuple(region.value for region in pulumi_aws.Region)

# Tags go to every resource, so the program checks the strictest of each receiving service's rules:
# - IAM (API reference, `Tag`): key 1-128, value 0-256 characters of [\p{L}\p{Z}\p{N}_.:/=+\-@];
#   at most 50 tags per role or policy; the `aws:` prefix is reserved.
#   https://docs.aws.amazon.com/IAM/latest/APIReference/API_Tag.html
# - Kinesis (API reference, `Tag`): key 1-128, value 0-256 characters of "Unicode letters,
#   digits, white space, _ . / = + - % @" (no ':'); at most 50 per stream, `aws:` reserved.
#   https://docs.aws.amazon.com/kinesis/latest/APIReference/API_Tag.html
# - DynamoDB (developer guide "Tagging restrictions"): 50 per resource, key 128 and value 256
#   Unicode characters in UTF-8, `aws` prefix reserved; letters, whitespace, numbers and
#   + - = . _ : / (no @).
#   https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TaggingRestrictions.html
# - Lambda ("Using tags on Lambda functions"): 50 per function, key 128 and value 256 characters,
#   `aws:` reserved. https://docs.aws.amazon.com/lambda/latest/dg/tagging.html
# - SQS ("Amazon SQS cost allocation tags"): 50 per queue, key 128, value 256, `aws:` reserved.
#   https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-queue-tags.html
# - CloudWatch (API reference, `Tag`): key 1-128, value 0-256 of [\p{L}\p{Z}\p{N}_.:/=+\-@].
#   https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_Tag.html
RESERVED_TAG_PREFIX: Final = "aws:"
# The punctuation each receiving service allows besides letters, separators and numbers. Kinesis's
# list has no ':', DynamoDB's no '@' (so '@' is refused only when the consumer's tables get it).
TAG_PUNCTUATION: Final = {"IAM": "_.:/=+-@", "Kinesis": "_./=+-%@", "DynamoDB": "_.:/=+-"}
DESTINATION_SERVICES: Final = ("IAM", "Kinesis")
CONSUMER_SERVICES: Final = ("IAM", "Kinesis", "DynamoDB")  # Lambda, SQS, CloudWatch: IAM's set


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice nearest to a misspelt word (case ignored), if any is near enough to suggest."""
    options = list(choices)
    by_lower = {option.lower(): option for option in options}
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[found[0]] if found else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean X?` for the nearest choice, or nothing."""
    match = closest(word, choices)
    return f"; did you mean {match}?" if match else ""


def region_problem(region: str) -> str | None:
    """Why a region is neither known to pulumi-aws nor well formed (AWS has no endpoint for it)."""
    if region in KNOWN_REGIONS or re.fullmatch(REGION_PATTERN, region):
        return None
    return "not an AWS region name (like us-east-1: two letters, words, a number)" + did_you_mean(
        region, KNOWN_REGIONS
    )


def _charset_problem(text: str, services: Iterable[str]) -> str | None:
    for service in services:
        allowed = TAG_PUNCTUATION[service]
        # \p{L} letters, \p{Z} separators (spaces), \p{N} numbers, as Unicode categories name them.
        bad = sorted(
            {ch for ch in text if unicodedata.category(ch)[0] not in "LZN" and ch not in allowed}
        )
        if bad:
            return (
                f"{service} allows only letters, digits, spaces and {allowed} (not {' '.join(bad)})"
            )
    return None


def tag_problems(tags: Mapping[str, str], services: Iterable[str]) -> list[str]:
    """Every rule the tags break in the services that receive them, each naming the tag.

    Each problem follows the key's name: `tags key 'x': ...`, `tags.team 'v': ...`.
    """
    services = tuple(services)
    problems = []
    if len(tags) > c.MAX_TAGS:
        problems.append(f": {len(tags)} tags: at most {c.MAX_TAGS} allowed")
    for key, value in tags.items():
        if not 1 <= len(key) <= c.TAG_KEY_MAX_CHARS:
            problems.append(f" key {key!r}: 1-{c.TAG_KEY_MAX_CHARS} characters")
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            problems.append(f" key {key!r}: the 'aws:' prefix is reserved for AWS's own tags")
        key_charset = _charset_problem(key, services)
        if key_charset:
            problems.append(f" key {key!r}: {key_charset}")
        if len(value) > c.TAG_VALUE_MAX_CHARS:
            problems.append(f".{key} {value!r}: at most {c.TAG_VALUE_MAX_CHARS} characters")
        value_charset = _charset_problem(value, services)
        if value_charset:
            problems.append(f".{key} {value!r}: {value_charset}")
    return problems


def arn_region(arn: str) -> str:
    """The region field of an ARN (`arn:partition:service:region:account:resource`)."""
    return arn.split(":")[3]


def arn_account(arn: str) -> str:
    """The account field of an ARN."""
    return arn.split(":")[4]
