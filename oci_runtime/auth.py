"""How the toolkit and the dynamic providers authenticate to OCI, and how they build SDK clients.

Modes (the ones OCI users have):
- `api_key`: `~/.oci/config` (or `config_file`), section `profile`; the default.
- `security_token`: a session token from `oci session authenticate`, same config file.
- `instance_principal`: the identity of the compute instance the code runs on.
- `resource_principal`: the identity of a Data Science notebook, job or function.
- `none`: no signing, for a container on localhost.
Clients are built per call (they are not picklable, nor safe to share between threads), but an API key
is loaded once per process: parsing and checking an RSA key costs about 30 ms of CPU, and an upload builds
a client on each of its threads. `endpoint` points a client somewhere else than the region's public
endpoint: a private endpoint, or a loopback fake in tests.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import oci

from domain.errors import UserError
from domain.ids import AUTH_MODES, AuthMode
from oci_runtime.retry import DEFAULT_BACKOFF, Backoff, oci_retry_strategy

DEFAULT_CONFIG_FILE = "~/.oci/config"
DEFAULT_PROFILE = "DEFAULT"

C = TypeVar("C")


@dataclass(frozen=True, kw_only=True)
class Auth:
    mode: AuthMode = "api_key"
    profile: str = DEFAULT_PROFILE
    config_file: str = DEFAULT_CONFIG_FILE

    def __post_init__(self) -> None:
        if self.mode not in AUTH_MODES:
            raise UserError(f"auth mode {self.mode!r} is not one of: {', '.join(AUTH_MODES)}")

    @classmethod
    def from_env(cls, mode: str | None = None, profile: str | None = None) -> Auth:
        """Explicit values first, then OCI_CLI_AUTH / OCI_CLI_PROFILE / OCI_CLI_CONFIG_FILE, then defaults."""
        chosen = mode or os.environ.get("OCI_CLI_AUTH") or "api_key"
        if chosen not in AUTH_MODES:
            raise UserError(f"auth mode {chosen!r} is not one of: {', '.join(AUTH_MODES)}")
        return cls(
            mode=chosen,
            profile=profile or os.environ.get("OCI_CLI_PROFILE") or DEFAULT_PROFILE,
            config_file=os.environ.get("OCI_CLI_CONFIG_FILE") or DEFAULT_CONFIG_FILE,
        )

    def as_inputs(self) -> dict[str, str]:
        """The form dynamic resources carry in their inputs (no secret in it: only where to find one)."""
        return {"mode": self.mode, "profile": self.profile, "configFile": self.config_file}

    @classmethod
    def from_inputs(cls, data: dict[str, Any] | None) -> Auth:
        data = data or {}
        return cls(
            mode=cast(AuthMode, data.get("mode", "api_key")),
            profile=str(data.get("profile", DEFAULT_PROFILE)),
            config_file=str(data.get("configFile", DEFAULT_CONFIG_FILE)),
        )


@dataclass(frozen=True)
class Credentials:
    """An SDK config dict and, where the mode needs one, the signer to pass next to it."""

    config: dict[str, Any]
    signer: Any | None


def credentials(auth: Auth, region: str | None = None) -> Credentials:
    """Load what `auth` names; a missing file, profile or key is a one-line UserError."""

    if auth.mode == "none":
        return Credentials({"region": region or ""}, None)
    if auth.mode == "instance_principal":
        signer = _principal(oci.auth.signers.InstancePrincipalsSecurityTokenSigner, "instance principal")
        return Credentials({"region": region or signer.region}, signer)
    if auth.mode == "resource_principal":
        signer = _principal(oci.auth.signers.get_resource_principals_signer, "resource principal")
        return Credentials({"region": region or signer.region}, signer)
    try:
        config = oci.config.from_file(os.path.expanduser(auth.config_file), auth.profile)
    except oci.exceptions.ConfigFileNotFound as exc:
        raise UserError(
            f"OCI config file {auth.config_file} not found: create it with `oci setup config`"
        ) from exc
    except oci.exceptions.ProfileNotFound as exc:
        raise UserError(f"profile {auth.profile!r} is not in {auth.config_file}") from exc
    except oci.exceptions.InvalidConfig as exc:
        raise UserError(f"OCI config {auth.config_file} [{auth.profile}] is invalid: {exc}") from exc
    except oci.exceptions.InvalidKeyFilePath as exc:  # its message names the file, the line and the value
        raise UserError(str(exc).split(" For more info")[0]) from exc
    if region:
        config["region"] = region
    if auth.mode == "security_token":
        token_file = config.get("security_token_file")
        if not token_file:
            raise UserError(
                f"profile {auth.profile!r} has no security_token_file: run `oci session authenticate`"
            )
        try:
            with open(os.path.expanduser(token_file), encoding="utf-8") as fh:
                token = fh.read().strip()
            key = oci.signer.load_private_key_from_file(config["key_file"], config.get("pass_phrase"))
        except OSError as exc:
            raise UserError(
                f"cannot read the session token or key for profile {auth.profile!r}: {exc}"
            ) from exc
        return Credentials(config, oci.auth.signers.SecurityTokenSigner(token, key))
    return Credentials(config, None)


_SIGNERS: dict[tuple[Any, ...], Any] = {}
_SIGNERS_LOCK = threading.Lock()


def _api_key_signer(config: dict[str, Any]) -> Any | None:
    """The signer the SDK would build from an API-key profile, built once per key and shared: signing is
    stateless, so clients on several threads can use one. A key file that changes (rotated, rewritten)
    is loaded again. None for a profile that names another `authentication_type` (the SDK handles it)."""

    if oci.util.AUTHENTICATION_TYPE_FIELD_NAME in config:
        return None
    oci.config.validate_config(config)  # what the client checks when it builds the signer itself
    content = config.get("key_content")
    key_file = os.path.expanduser(str(config.get("key_file") or ""))
    stamp = None
    if not content:
        st = os.stat(key_file)
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    passphrase = oci.config.get_config_value_or_default(config, "pass_phrase")
    key = (config["tenancy"], config["user"], config["fingerprint"], key_file, stamp, content, passphrase)
    with _SIGNERS_LOCK:
        signer = _SIGNERS.get(key)
        if signer is None:
            signer = _SIGNERS[key] = oci.signer.Signer(
                tenancy=config["tenancy"],
                user=config["user"],
                fingerprint=config["fingerprint"],
                private_key_file_location=key_file or None,
                pass_phrase=passphrase,
                private_key_content=content,
            )
    return signer


def _principal(factory: Any, what: str) -> Any:
    try:
        return factory()
    except Exception as exc:
        raise UserError(f"{what} authentication failed (is this running inside OCI?): {exc}") from exc


def make_client(
    client_class: type[C],
    auth: Auth,
    *,
    region: str | None = None,
    endpoint: str | None = None,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> C:
    """An oci SDK client with the project's retry policy, built fresh for the caller.

    Without the SDK's default circuit breaker: it is one breaker for every client in the process, opened
    by any 10 consecutive 429/5xx answers (retries included), and then fails every call to every service
    for 30 s with an error that is neither a ServiceError nor retried. One throttled upload would fail an
    unrelated readiness check. The bounded backoff here is the policy; nothing else cuts it short.
    """

    if auth.mode == "none":
        raise UserError("auth mode 'none' is for a local container; OCI services need signed requests")
    creds = credentials(auth, region)
    kwargs: dict[str, Any] = {
        "retry_strategy": oci_retry_strategy(backoff),
        "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy(),
    }
    if endpoint:
        kwargs["service_endpoint"] = endpoint
    try:  # the profile's values are checked and its API key is loaded only now
        signer = creds.signer or _api_key_signer(creds.config)
        if signer is not None:
            kwargs["signer"] = signer
        return client_class(creds.config, **kwargs)  # type: ignore[call-arg]
    except (oci.exceptions.InvalidConfig, oci.exceptions.InvalidPrivateKey, OSError) as exc:
        raise UserError(
            f"OCI config {auth.config_file} [{auth.profile}] is not usable: {' '.join(str(exc).split())}"
        ) from exc
