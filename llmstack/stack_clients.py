"""OCI SDK clients for the commands that read a stack's account directly (preflight, image-repository).

Imported by those commands when they run, so the runtime extra is needed only then."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from domain.ids import AuthMode
from oci_runtime.auth import Auth, make_client

if TYPE_CHECKING:
    from domain.settings import Settings


def stack_clients(settings: Settings, endpoint: str | None = None) -> Callable[[type[Any]], Any]:
    """SDK client class -> a client signed as the stack's `auth` says, in its region; every call goes to
    `endpoint` when given (a proxy or a test fake)."""
    auth = Auth(
        mode=cast(AuthMode, settings.auth.mode),
        profile=settings.auth.profile,
        config_file=settings.auth.config_file,
    )

    def client(cls: type[Any]) -> Any:
        return make_client(cls, auth, region=settings.region, endpoint=endpoint)

    return client
