"""What every dynamic provider here shares: input checks, a partial diff, and a state-preserving read.

Providers build their OCI clients inside each method (clients are not picklable) and keep secrets out of
plain outputs. Keys in `NEVER_DIFF` say how to reach OCI, not what to build, so changing them changes
nothing in the cloud.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import pulumi.dynamic

PROVIDER_KEY = "__provider"
NEVER_DIFF = frozenset({PROVIDER_KEY, "auth", "endpoints"})


def partial_diff(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    *,
    replace_on: Iterable[str] = (),
    ignore: Iterable[str] = (),
    outputs: Iterable[str] = (),
) -> pulumi.dynamic.DiffResult:
    """Compare the inputs in `news` with the old state (old inputs plus the provider's `outputs`).

    A change of a key in `replace_on` replaces the resource; any other change updates it in place. An input
    that is no longer given counts as a change: the engine leaves out inputs that are None, so a removed
    `hfToken` arrives as a missing key, not as None.
    """
    skip = NEVER_DIFF | set(ignore)
    keys = set(news) | (set(olds) - set(outputs))
    changed = sorted(k for k in keys if k not in skip and olds.get(k) != news.get(k))
    replaces = [k for k in changed if k in set(replace_on)]
    return pulumi.dynamic.DiffResult(
        changes=bool(changed),
        replaces=replaces,
        stables=sorted(k for k in news if k not in changed and k not in skip),
        delete_before_replace=False,
    )


class ProviderBase(pulumi.dynamic.ResourceProvider):
    """`check` runs `validate`; `diff` is a partial diff over the declared inputs.

    `outputs`: the keys a provider adds to its inputs in what create and update return.
    """

    replace_on: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()

    def validate(self, news: Mapping[str, Any]) -> list[pulumi.dynamic.CheckFailure]:
        return [
            pulumi.dynamic.CheckFailure(key, f"{key} is required")
            for key in self.required
            if news.get(key) in (None, "")
        ]

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        return pulumi.dynamic.CheckResult(news, self.validate(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        return partial_diff(olds, news, replace_on=self.replace_on, outputs=self.outputs)


class DynamicResource(pulumi.dynamic.Resource):
    """Inputs and outputs keep OCI's camelCase names, in state and as Python attributes alike."""
