"""Every Pulumi SDK internal the project relies on, in one place, checked when this module is imported.

The offline plan (llmstack/plan.py) runs the real program under Pulumi's mock engine without the Pulumi
CLI, which the SDK's public API does not quite allow; the program reads the whole config map
(components/config.py); a few tests reach into the SDK too. It lives in components/, the Pulumi layer, so
that both the program and the CLI above it can use it. Each such name is
listed in `INTERNALS` with why it is needed. They are resolved by dotted path when this module is imported:
if a Pulumi upgrade moves or removes any of them, the import fails with `PulumiInternalsMoved`, naming every
one that is missing (tests/test_pulumi_internals.py asserts that none is). Nothing else in the project
imports a private Pulumi name; use the typed functions below.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, TypeVar

from pulumi.runtime import config as runtime_config

T = TypeVar("T")


@dataclass(frozen=True)
class Internal:
    path: str  # "package.module.name" (or "package.module" for a module)
    why: str


INTERNALS: tuple[Internal, ...] = (
    Internal(
        "pulumi.runtime.sync_await._sync_await",
        "runs the engine's coroutines to their end from plain code: the plan has no `pulumi` CLI host loop",
    ),
    Internal(
        "pulumi.runtime.stack.run_pulumi_func",
        "runs `__main__.py` as the CLI's language host would: inside a Stack resource, waiting for every "
        "registration, so that stack outputs exist",
    ),
    Internal(
        "pulumi.runtime.settings.set_root_resource",
        "clears the Stack resource before and after a plan: plans run one after another in one process",
    ),
    Internal(
        "pulumi.runtime.settings.get_root_resource",
        "the Stack resource of the plan just run, to read its outputs",
    ),
    Internal(
        "pulumi.runtime.config.CONFIG",
        "is the whole config map the engine handed the program, so that "
        "unknown keys can be reported (`pulumi.Config` reads only the keys asked for)",
    ),
    Internal(
        "pulumi.runtime.mocks.MockMonitor",
        "the mock engine's resource monitor, subclassed to record what a real engine would see (parents, "
        "dependencies, raw inputs)",
    ),
    Internal(
        "pulumi.runtime.rpc.deserialize_properties",
        "turns a registration's protobuf inputs back into Python values, unknowns kept",
    ),
    Internal(
        "pulumi.dynamic.dynamic.serialize_provider",
        "tests: a dynamic provider is shipped to the engine pickled; a test pickles it the same way",
    ),
    Internal(
        "pulumi._types.input_type_types",
        "tests: the typed fields of a pulumi_oci `...Args` input class, to check inputs against them",
    ),
    Internal("pulumi._types.is_input_type", "tests: whether a type hint is a pulumi_oci input class"),
    Internal(
        "pulumi.runtime.proto.analyzer_pb2",
        "tests: the policy pack is driven over the analyzer gRPC protocol, as `pulumi preview` drives it",
    ),
    Internal("pulumi.runtime.proto.analyzer_pb2_grpc", "tests: the analyzer protocol's client stub"),
)


class PulumiInternalsMoved(ImportError):
    """A Pulumi SDK internal that the project uses is no longer where it was."""


def resolve(path: str) -> Any:
    """The object at a dotted path: the longest importable module prefix, then attributes.

    Raises LookupError saying which part is missing."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            found: Any = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for depth, attribute in enumerate(parts[split:], start=split + 1):
            try:
                found = getattr(found, attribute)
            except AttributeError:
                raise LookupError(f"{'.'.join(parts[: depth - 1])} has no {attribute!r}") from None
        return found
    raise LookupError(f"no module {parts[0]!r}")


def missing(internals: Iterable[Internal] = INTERNALS) -> list[str]:
    """One line per internal that does not resolve: its dotted path, what is missing, and why it is used."""
    problems = []
    for internal in internals:
        try:
            resolve(internal.path)
        except LookupError as exc:
            problems.append(f"{internal.path} ({exc}): used because it {internal.why}")
    return problems


def moved_message(problems: list[str]) -> str:
    try:
        installed = version("pulumi")
    except PackageNotFoundError:  # pragma: no cover - pulumi is a dependency
        installed = "(not installed)"
    return (
        f"pulumi {installed} no longer has {len(problems)} SDK internal(s) that "
        "components/pulumi_internals.py relies on; pin the pulumi version in pyproject.toml, or find where "
        "each moved and update INTERNALS:\n" + "\n".join(f"  - {problem}" for problem in problems)
    )


def _resolve_all(internals: Iterable[Internal]) -> dict[str, Any]:
    internals = tuple(internals)
    problems = missing(internals)
    if problems:
        raise PulumiInternalsMoved(moved_message(problems))
    return {internal.path: resolve(internal.path) for internal in internals}


_FOUND = _resolve_all(INTERNALS)

if TYPE_CHECKING:
    from pulumi.runtime.mocks import MockMonitor as MockMonitor  # explicit re-export
else:
    MockMonitor = _FOUND["pulumi.runtime.mocks.MockMonitor"]

serialize_provider: Callable[[Any], str] = _FOUND["pulumi.dynamic.dynamic.serialize_provider"]
input_type_types: Callable[[type], dict[str, Any]] = _FOUND["pulumi._types.input_type_types"]
is_input_type: Callable[[type], bool] = _FOUND["pulumi._types.is_input_type"]
analyzer_pb2: Any = _FOUND["pulumi.runtime.proto.analyzer_pb2"]
analyzer_pb2_grpc: Any = _FOUND["pulumi.runtime.proto.analyzer_pb2_grpc"]


def sync_await(awaitable: Awaitable[T]) -> T:
    """The result of an engine coroutine, run to its end on the current event loop."""
    result: T = _FOUND["pulumi.runtime.sync_await._sync_await"](awaitable)
    return result


def run_program(program: Callable[[], None]) -> None:
    """Run a Pulumi program under the engine that is set (the mocks, for a plan), as the CLI would."""
    sync_await(_FOUND["pulumi.runtime.stack.run_pulumi_func"](program))


def clear_root_resource() -> None:
    """Forget the last program's Stack resource (its type hint says Resource; None is what resets it)."""
    _FOUND["pulumi.runtime.settings.set_root_resource"](None)


def root_resource() -> Any:
    """The Stack resource of the program that ran last (None before any)."""
    return _FOUND["pulumi.runtime.settings.get_root_resource"]()


def deserialize_properties(struct: Any) -> Any:
    """A registration's inputs as Python values, unknown values kept as such."""
    return _FOUND["pulumi.runtime.rpc.deserialize_properties"](struct, keep_unknowns=True)


def config_map() -> tuple[dict[str, str], set[str]]:
    """Every config key the engine handed the program, with its value as text, and which are secret."""
    raw: dict[str, str] = {**runtime_config.get_config_env(), **_FOUND["pulumi.runtime.config.CONFIG"].get()}
    secret_keys = {key for key in raw if runtime_config.is_config_secret(key)}
    secret_keys |= set(runtime_config.get_config_secret_keys_env())
    return raw, secret_keys
