"""Where the Feast registry and online store live, and how their passwords stay out of the repo.

``feature_store.yaml`` never holds a password. It holds ``${REDIS_PASSWORD}`` and
``${PGPASSWORD}`` references, which Feast expands from the environment of whichever
process opens the repo (this step, a model server, a notebook), so each of them needs
the same variables set (in a cluster: the same Secret mounted as environment variables).

Feast expands the references as text, before it parses the YAML and (for Redis) a
comma-separated connection string. ``runtime_config`` repeats that expansion with this
step's passwords and checks that the values come through unchanged, so a password those
formats cannot carry fails here, by name, instead of as an authentication error later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

import yaml

from kfp_mlops.components._shared.errors import DataError, FeatureStoreError
from kfp_mlops.components._shared.redact import SECRET_QUERY_KEYS, redact_text, redact_uri

REDIS_PASSWORD_ENV = "REDIS_PASSWORD"
# libpq reads PGPASSWORD itself too, so a PostgreSQL registry works even for a reader that
# does not expand the reference; the Secret wiring in pipelines/ already mounts this key.
REGISTRY_PASSWORD_ENV = "PGPASSWORD"
FILE_REGISTRY_SCHEMES = ("gs", "s3", "file")
SQL_DIALECTS = ("postgresql", "mysql", "mariadb", "sqlite")
PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,99}$")
HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
REFERENCE = re.compile(r"\$\{(\w+)\}")
REGISTRY_FIX = "pass empty (a registry inside feature_repo), gs://bucket/registry.db, s3://bucket/registry.db, or postgresql+psycopg://user@host:5432/db"
ONLINE_FIX = "pass empty (sqlite inside feature_repo) or redis://host:6379[/db] (rediss:// for TLS)"
SECRET_FIX = "put the password in the {env} environment variable (in a cluster: a Secret mounted with kfp-kubernetes) and leave it out of the parameter"


@dataclass(frozen=True)
class StoreSettings:
    """Where the registry and the online store live (checked and normalized on construction).

    Attributes:
        registry: Empty for ``registry.db`` inside the repo (embedded default); a gs:// or
            s3:// path for a file registry on object storage; a SQLAlchemy URL
            (``postgresql+psycopg://user@host:5432/db``) for a SQL registry. A password in
            the URL is moved to ``registry_password``.
        online_store: Empty for sqlite inside the repo; ``redis://host:port[/db]`` (or
            ``host:port``; ``rediss://`` for TLS) for Redis. A password in the URL is moved
            to ``redis_password``.
        project: Feast project name.
        redis_password: Password of the Redis online store (from the environment, never a parameter).
        registry_password: Password of the SQL registry (from the environment, never a parameter).
    """

    registry: str = ""
    online_store: str = ""
    project: str = "kfp_mlops"
    redis_password: str = field(default="", repr=False)
    registry_password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("registry", "online_store", "project", "redis_password", "registry_password"):
            if not isinstance(getattr(self, name), str):
                raise DataError(f"{name} must be a string, not {type(getattr(self, name)).__name__}", fix=REGISTRY_FIX if name == "registry" else ONLINE_FIX)
        if not PROJECT.match(self.project):
            raise DataError(f"project {self.project[:60]!r} must be letters, digits and underscores (up to 100, not starting with _)", fix="pass e.g. kfp_mlops")
        registry, sql, url_password = _parse_registry(self.registry.strip())
        online, redis_url_password = _parse_online(self.online_store.strip())
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "online_store", online)
        object.__setattr__(self, "registry_password", _one_password("registry", url_password, self.registry_password, REGISTRY_PASSWORD_ENV) if sql else "")
        object.__setattr__(self, "redis_password", _one_password("online_store", redis_url_password, self.redis_password, REDIS_PASSWORD_ENV) if online else "")

    def required_env(self) -> list[str]:
        """Environment variables every process that opens the repo must set."""
        return [name for name, value in ((REGISTRY_PASSWORD_ENV, self.registry_password), (REDIS_PASSWORD_ENV, self.redis_password)) if value]

    def describe(self) -> dict[str, str]:
        """The registry and online store for logs and metadata (no credentials)."""
        return {
            "registry": redact_uri(self.registry) if self.registry else "registry.db in feature_repo",
            "online_store": redact_uri(self.online_store) if self.online_store else "sqlite (online.db in feature_repo)",
        }

    def secrets(self) -> list[str]:
        return [s for s in (self.redis_password, self.registry_password) if s]


def _shown(uri: str) -> str:
    """A parameter as it may appear in a message: user info dropped, password options masked, short."""
    return repr(redact_text(redact_uri(uri))[:80])


def _one_password(what: str, in_url: str, given: str, env: str) -> str:
    if in_url and given and in_url != given:
        raise DataError(
            f"the {what} URL carries one password and {env} another",
            fix=f"drop the password from the URL; {env} alone is what every process that opens the feature repo uses",
        )
    return in_url or given


def _refuse_dollar(text: str, what: str, fix: str) -> None:
    # Feast expands $NAME in feature_store.yaml from the environment: a '$' in a parameter
    # would read (and could leak) another variable.
    if "$" in text:
        raise DataError(f"{what} {_shown(text)} contains '$', which Feast would expand from the environment", fix=fix)


def _parse_registry(text: str) -> tuple[str, bool, str]:
    """(normalized registry without credentials, whether it is a SQL registry, password from the URL)."""
    if not text:
        return "", False, ""
    _refuse_dollar(text, "registry", REGISTRY_FIX)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in FILE_REGISTRY_SCHEMES:
        parts = urlsplit(text)
        if scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.path.endswith("/")):
            raise DataError(f"registry {_shown(text)} is not an absolute file path (file:///path/registry.db)", fix=REGISTRY_FIX)
        if scheme != "file" and (not parts.netloc or parts.path.strip("/") == ""):
            raise DataError(f"registry {_shown(text)} needs a bucket and an object path", fix=REGISTRY_FIX)
        if "@" in parts.netloc or parts.query:
            raise DataError(f"registry {_shown(text)} carries credentials or options; object-store credentials come from the environment", fix=REGISTRY_FIX)
        return text, False, ""
    if scheme.split("+", 1)[0] not in SQL_DIALECTS:
        raise DataError(f"registry {_shown(text)} is not a registry location this step supports", fix=REGISTRY_FIX)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise DataError(f"registry {_shown(text)} is not a valid SQLAlchemy URL", fix=REGISTRY_FIX) from None
    secret_keys = sorted(k for k in url.query if SECRET_QUERY_KEYS.match(k))
    if secret_keys:
        raise DataError(f"registry {_shown(text)} carries credentials in its query ({secret_keys})", fix=SECRET_FIX.format(env=REGISTRY_PASSWORD_ENV))
    if url.get_backend_name() == "sqlite":
        return text, False, ""
    if not url.host:
        raise DataError(f"registry {_shown(text)} names no database host", fix=REGISTRY_FIX)
    password = url.password or ""
    # URL.set(password=None) means "leave it"; the NamedTuple's _replace really drops it.
    return url._replace(password=None).render_as_string(hide_password=False), True, str(password)


def _parse_online(text: str) -> tuple[str, str]:
    """(normalized ``redis[s]://[user@]host:port[/db]``, password from the URL)."""
    if not text:
        return "", ""
    _refuse_dollar(text, "online_store", ONLINE_FIX)
    raw = text if "://" in text else f"redis://{text}"
    try:
        parts = urlsplit(raw)
        port = 6379 if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not port:
        raise DataError(f"online_store {_shown(raw)} has no valid host:port (ports are 1-65535)", fix=ONLINE_FIX)
    if parts.scheme not in ("redis", "rediss"):
        raise DataError(f"online_store {_shown(raw)} is not a Redis address", fix=ONLINE_FIX)
    host = parts.hostname or ""
    if not HOST.match(host):
        raise DataError(f"online_store {_shown(raw)}: {host!r} is not a host name or IPv4 address", fix=ONLINE_FIX)
    db = parts.path.strip("/")
    if db and not (db.isascii() and db.isdigit() and len(db) < 6):
        raise DataError(f"online_store {_shown(raw)}: database {db[:20]!r} is not a number", fix=ONLINE_FIX)
    if parts.query or parts.fragment:
        raise DataError(f"online_store {_shown(raw)} has options this step does not pass on", fix=ONLINE_FIX)
    user = unquote(parts.username or "")
    if user and not re.fullmatch(r"[A-Za-z0-9_.-]+", user):
        raise DataError("the online_store user name may hold only letters, digits, '_', '.' and '-'", fix=ONLINE_FIX)
    normalized = f"{parts.scheme}://{user + '@' if user else ''}{host}:{port}{'/' + str(int(db)) if db else ''}"
    return normalized, unquote(parts.password or "")


class _Dumper(yaml.SafeDumper):
    """Single-quotes scalars holding a ${VAR} reference: after Feast's textual expansion
    only a quote or a line break in the value can change what the YAML means."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "'" if "${" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def store_config(settings: StoreSettings, offline_store_type: str = "") -> dict[str, Any]:
    """The feature_store.yaml content, with ${VAR} references where passwords go."""
    if not settings.registry:
        registry: Any = "registry.db"
    elif settings.registry.lower().startswith("file://"):
        registry = unquote(urlsplit(settings.registry).path)  # Feast joins a file:// URI onto the repo path
    elif settings.registry.split("://", 1)[0].lower() in FILE_REGISTRY_SCHEMES:
        registry = settings.registry
    else:
        registry = {"registry_type": "sql", "path": settings.registry, "cache_ttl_seconds": 60}
        if settings.registry_password:
            # connect_args, not the URL: a password in a URL would need percent-encoding.
            registry["sqlalchemy_config_kwargs"] = {"echo": False, "connect_args": {"password": f"${{{REGISTRY_PASSWORD_ENV}}}"}}
    if not settings.online_store:
        online: dict[str, Any] = {"type": "sqlite", "path": "online.db"}
    else:
        parts = urlsplit(settings.online_store)
        options = [f"{parts.hostname}:{parts.port}"]
        options += [f"db={parts.path.strip('/')}"] if parts.path.strip("/") else []
        options += ["ssl=true"] if parts.scheme == "rediss" else []
        options += [f'username="{parts.username}"'] if parts.username else []
        # JSON-quoted: Feast json-decodes option values, which would turn 1234 or true into non-strings.
        options += [f'password="${{{REDIS_PASSWORD_ENV}}}"'] if settings.redis_password else []
        online = {"type": "redis", "connection_string": ",".join(options)}
    return {
        "project": settings.project,
        "provider": "local",
        "registry": registry,
        "online_store": online,
        "offline_store": {"type": offline_store_type or _offline_type()},
        "entity_key_serialization_version": 3,
    }


def _offline_type() -> str:
    from kfp_mlops.components.featurize.asof_store import STORE_TYPE

    return STORE_TYPE


def config_text(settings: StoreSettings) -> str:
    return yaml.dump(store_config(settings), Dumper=_Dumper, sort_keys=False)


def expand(text: str, env: Mapping[str, str]) -> str:
    """Feast's expansion of ${VAR} references (an unset variable stays as written)."""
    return REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def runtime_config(settings: StoreSettings) -> dict[str, Any]:
    """The config as Feast will read it in a process with this step's passwords in its environment."""
    env = {REDIS_PASSWORD_ENV: settings.redis_password, REGISTRY_PASSWORD_ENV: settings.registry_password}
    try:
        loaded = yaml.safe_load(expand(config_text(settings), env))
    except yaml.YAMLError:
        loaded = None
    if settings.redis_password:
        from feast.infra.online_stores.redis import RedisOnlineStore

        conn = (loaded or {}).get("online_store", {}).get("connection_string", "")
        got = RedisOnlineStore._parse_connection_string(conn)[1].get("password") if isinstance(conn, str) else None
        _same_password(got, settings.redis_password, REDIS_PASSWORD_ENV, "Redis connection string")
    if settings.registry_password:
        got = ((loaded or {}).get("registry") or {}).get("sqlalchemy_config_kwargs", {}).get("connect_args", {}).get("password")
        _same_password(got, settings.registry_password, REGISTRY_PASSWORD_ENV, "SQL registry settings")
    if not isinstance(loaded, dict):
        raise FeatureStoreError("feature_store.yaml does not read back as settings", fix="report this as a kfp-mlops bug")
    return loaded


def _same_password(got: Any, want: str, env: str, where: str) -> None:
    if got != want:
        raise FeatureStoreError(
            f"the password in {env} does not survive Feast's ${{{env}}} expansion into feature_store.yaml's {where} unchanged",
            fix=f"use a password without quotes ('\"), backslashes, commas or line breaks (rotate the Secret that sets {env})",
        )


def referenced_env(yaml_text: str) -> list[str]:
    """The environment variables a feature_store.yaml reads."""
    return sorted(set(REFERENCE.findall(yaml_text)))
